/* An MLLP server on the mooring C API: acknowledges each HL7 message (MSA|AA),
 * prints one key=value line per event, waits in its own poll() on the node's
 * descriptor, and exits after N messages, 10 s, or SIGINT/SIGTERM.
 * Usage: server [ip:port] [N]     (defaults 127.0.0.1:2575 and 10) */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mooring.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* MSH-10 (control id): the text after the 9th '|' of the MSH segment. */
static int control_id(const uint8_t *m, size_t n, const char **id) {
    size_t i = 0, bars = 0;
    while (i < n && bars < 9) bars += m[i++] == '|';
    size_t start = i;
    while (i < n && m[i] != '|' && m[i] != '\r') i++;
    *id = (const char *)m + start;
    return bars == 9 ? (int)(i - start) : 0;
}

static int fail(const char *what, mooring_node *node) {
    char text[256];
    mooring_last_error(text, sizeof text);
    fprintf(stderr, "%s: %s\n", what, text);
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
    mooring_node *node = NULL;
    uint32_t listener;
    char addr[MOORING_ADDR_MAX];
    if (mooring_node_new(&cfg, &node) != MOORING_RESULT_OK) return fail("new", node);
    if (mooring_node_listen(node, bind, &listener) != MOORING_RESULT_OK ||
        mooring_node_local_addr(node, listener, addr, sizeof addr) != MOORING_RESULT_OK)
        return fail("listen", node);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("event=listening addr=%s\n", addr);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

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
                int n = control_id(ev.data, ev.len, &id);
                char ack[256];
                int len = snprintf(ack, sizeof ack,
                    "MSH|^~\\&|MOORING|C|||20260101000000||ACK|%.*s|P|2.5\rMSA|AA|%.*s\r", n, id, n, id);
                mooring_result r = mooring_node_send(node, ev.link, (const uint8_t *)ack, (size_t)len);
                printf("event=message link=%u.%u len=%zu control_id=%.*s reply=%s\n", ev.link.slot,
                       ev.link.gen, ev.len, n, id, mooring_result_name(r));
                seen++;
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
    printf("event=done messages=%ld accepted=%llu\n", seen, (unsigned long long)stats.accepted);
    mooring_node_free(node);
    return 0;
}
