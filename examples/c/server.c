/* An MLLP server on the mooring C API: acknowledges each HL7 message (MSA|AA),
 * prints one key=value line per event, waits in its own poll() on the node's
 * descriptor, and exits after N messages, 10 s, or SIGINT/SIGTERM.
 * Usage: server [ip:port] [N] [CERT KEY]
 *   (defaults 127.0.0.1:2575 and 10; CERT KEY: serve TLS with these PEM files) */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mooring.h"
#include "example.h"

/* Longest MSH-10 answered with an ACK that quotes it (HL7 v2.7's limit for
 * the field); a longer one is rejected without being quoted. */
#define ID_MAX 199

/* MSH-10 (control id): the text after the 9th '|' of the MSH segment, which
 * ends at the first CR or LF. Its length, however long (size_t: no overflow). */
static size_t control_id(const uint8_t *m, size_t n, const char **id) {
    size_t i = 0, bars = 0;
    while (i < n && bars < 9 && m[i] != '\r' && m[i] != '\n') bars += m[i++] == '|';
    size_t start = i;
    while (i < n && m[i] != '|' && m[i] != '\r' && m[i] != '\n') i++;
    *id = (const char *)m + start;
    return bars == 9 ? i - start : 0;
}

/* Writes the ACK for control id `id` into `ack`; returns its length, or 0 when
 * it does not fit. An id longer than ID_MAX gets MSA|AR without it; a message
 * without MSH-10 (HL7 requires it) gets MSA|AR with MSA-3 saying so, as
 * mooring listen and relay answer it. */
static size_t build_ack(char *ack, size_t size, const char *id, size_t n) {
    int quoted = n <= ID_MAX;
    const char *code = quoted && n > 0 ? "AA" : "AR";
    const char *text = n == 0 ? "|MSH-10 (message control id) is missing" : "";
    int len = snprintf(ack, size, "MSH|^~\\&|MOORING|C|||20260101000000||ACK|%.*s|P|2.5\rMSA|%s|%.*s%s\r",
                       quoted ? (int)n : 0, id, code, quoted ? (int)n : 0, id, text);
    /* snprintf returns the length it WOULD have written: never send more than
     * the buffer holds. */
    return len < 0 || (size_t)len >= size ? 0 : (size_t)len;
}

static int fail(const char *what, mooring_node *node) {
    print_last_error(what);
    mooring_node_free(node);
    return 1;
}

int main(int argc, char **argv) {
    const char *bind = argc > 1 ? argv[1] : "127.0.0.1:2575";
    long want = argc > 2 ? atol(argv[2]) : 10, seen = 0;
    mooring_config cfg;
    mooring_config_default(&cfg);
    cfg.max_links = 4;          /* a small box: 4 links x 2 x 4 KiB buffers */
    cfg.max_connections = 4;
    cfg.buffer_size = 4096;
    cfg.max_frame = 64 * 1024;
    cfg.large_buffers = 1;
    if (argc > 4) { /* TLS: read and checked by mooring_node_new */
        cfg.tls_cert = argv[3];
        cfg.tls_key = argv[4];
    }
    mooring_node *node = NULL;
    uint32_t listener;
    char addr[MOORING_ADDR_MAX];
    if (mooring_node_new(&cfg, &node) != MOORING_RESULT_OK) return fail("new", node);
    if (mooring_node_listen(node, bind, &listener) != MOORING_RESULT_OK ||
        mooring_node_local_addr(node, listener, addr, sizeof addr) != MOORING_RESULT_OK)
        return fail("listen", node);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("event=listening addr=%s\n", addr);
    stop_on_signals();

    struct pollfd pfd = {.fd = mooring_node_fd(node), .events = POLLIN};
    time_t end = time(NULL) + 10;
    int busy = 1;
    while (!stop && seen < want && time(NULL) < end) {
        if (!busy) { /* sleep only after a pass without events */
            int64_t wait = mooring_node_next_deadline_ms(node);
            poll(&pfd, 1, wait < 0 || wait > 200 ? 200 : (int)wait);
        }
        if (mooring_node_poll(node, 0) != MOORING_RESULT_OK) return fail("poll", node);
        busy = 0;
        mooring_event ev;
        while (mooring_node_next_event(node, &ev) == MOORING_RESULT_OK) {
            busy = 1;
            if (ev.kind == MOORING_EVENT_KIND_CONNECTED) {
                printf("event=connected link=%u.%u peer=%s\n", ev.link.slot, ev.link.gen, ev.peer);
            } else if (ev.kind == MOORING_EVENT_KIND_MESSAGE) {
                const char *id;
                size_t n = control_id(ev.data, ev.len, &id);
                char ack[2 * ID_MAX + 128];
                size_t len = build_ack(ack, sizeof ack, id, n);
                const char *reply = "NOT_SENT";
                if (len > 0)
                    reply = mooring_result_name(mooring_node_send(node, ev.link, (const uint8_t *)ack, len));
                printf("event=message link=%u.%u len=%zu control_id=", ev.link.slot, ev.link.gen, ev.len);
                print_value(id, n > ID_MAX ? ID_MAX : n); /* a bounded line */
                printf(" reply=%s id_len=%zu\n", reply, n);
                seen++;
            } else if (ev.kind == MOORING_EVENT_KIND_TLS_ESTABLISHED) {
                printf("event=tls link=%u.%u peer=%s version=%.*s suite=%.*s peer_identity=", ev.link.slot,
                       ev.link.gen, ev.peer, (int)ev.tls_version_len, ev.tls_version, (int)ev.tls_suite_len,
                       ev.tls_suite);
                if (ev.tls_peer_identity)
                    print_value(ev.tls_peer_identity, ev.tls_peer_identity_len);
                else
                    putchar('-'); /* no client certificate */
                putchar('\n');
            } else if (ev.kind == MOORING_EVENT_KIND_TLS_FAILED) {
                printf("event=tls_failed link=%u.%u peer=%s reason=%s detail=", ev.link.slot, ev.link.gen,
                       ev.peer, mooring_close_reason_name(ev.reason));
                print_value(ev.tls_detail, ev.tls_detail_len); /* rustls's text */
                putchar('\n');
            } else if (ev.kind == MOORING_EVENT_KIND_CLOSED || ev.kind == MOORING_EVENT_KIND_REJECTED) {
                printf("event=%s link=%u.%u peer=%s reason=%s frames_in=%llu\n",
                       ev.kind == MOORING_EVENT_KIND_CLOSED ? "closed" : "rejected", ev.link.slot,
                       ev.link.gen, ev.peer, mooring_close_reason_name(ev.reason),
                       (unsigned long long)ev.stats.frames_in);
            }
        }
    }
    mooring_node_poll(node, 0); /* write the last replies */
    mooring_node_stats stats;
    mooring_node_get_stats(node, &stats);
    printf("event=stats frames_in=%llu frames_out=%llu bytes_in=%llu links_open=%llu closed=%llu\n",
           (unsigned long long)stats.frames_in, (unsigned long long)stats.frames_out,
           (unsigned long long)stats.bytes_in, (unsigned long long)stats.links_open,
           (unsigned long long)stats.closes[MOORING_CLOSE_REASON_PEER_CLOSED]);
    printf("event=done messages=%ld accepted=%llu\n", seen, (unsigned long long)stats.accepted);
    mooring_node_free(node);
    return 0;
}
