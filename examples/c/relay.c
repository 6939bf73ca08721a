/* A store-and-forward relay on the mooring C API: devices connect to LISTEN,
 * every HL7 message is written to a spool directory (AA once it is on disk)
 * and forwarded, in order, to the MLLP receiver at UPSTREAM. Prints one
 * key=value line per relay event and a stats line whenever the numbers
 * change; exits once N messages were acknowledged upstream and the spool is
 * empty, after 20 s, or on SIGINT/SIGTERM.
 * Usage: relay LISTEN UPSTREAM SPOOL_DIR [N]     (N defaults to 10) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mooring.h"
#include "example.h"

/* Prints ` key=` and at most 199 of the bytes as its value (print_value);
 * NULL prints as `-`. */
static void print_bytes(const char *key, const uint8_t *s, size_t n) {
    printf(" %s=", key);
    if (s == NULL) { putchar('-'); return; }
    print_value(s, n < 199 ? n : 199);
}

static const char *kind_name(mooring_relay_event_kind k) {
    switch (k) {
    case MOORING_RELAY_EVENT_KIND_DEVICE_CONNECTED: return "device_connected";
    case MOORING_RELAY_EVENT_KIND_DEVICE_MESSAGE: return "device_message";
    case MOORING_RELAY_EVENT_KIND_REFUSED: return "refused";
    case MOORING_RELAY_EVENT_KIND_DUPLICATE: return "duplicate";
    case MOORING_RELAY_EVENT_KIND_QUEUE_FULL: return "queue_full";
    case MOORING_RELAY_EVENT_KIND_QUEUED: return "queued";
    case MOORING_RELAY_EVENT_KIND_REPLY_TIMEOUT: return "reply_timeout";
    case MOORING_RELAY_EVENT_KIND_DEVICE_CLOSED: return "device_closed";
    case MOORING_RELAY_EVENT_KIND_REJECTED: return "rejected";
    case MOORING_RELAY_EVENT_KIND_UPSTREAM_CONNECTING: return "upstream_connecting";
    case MOORING_RELAY_EVENT_KIND_UPSTREAM_CONNECTED: return "upstream_connected";
    case MOORING_RELAY_EVENT_KIND_UPSTREAM_LOST: return "upstream_lost";
    case MOORING_RELAY_EVENT_KIND_UPSTREAM_LINK_LOST: return "upstream_link_lost";
    case MOORING_RELAY_EVENT_KIND_UPSTREAM_RECONNECTING: return "upstream_reconnecting";
    case MOORING_RELAY_EVENT_KIND_FORWARDED: return "forwarded";
    case MOORING_RELAY_EVENT_KIND_ACKED: return "acked";
    case MOORING_RELAY_EVENT_KIND_UNEXPECTED_REPLY: return "unexpected_reply";
    case MOORING_RELAY_EVENT_KIND_UPSTREAM_REPLY: return "upstream_reply";
    case MOORING_RELAY_EVENT_KIND_FAILED: return "failed";
    case MOORING_RELAY_EVENT_KIND_SPOOL_OPENED: return "spool";
    case MOORING_RELAY_EVENT_KIND_SPOOL_PRESSURE: return "spool_pressure";
    case MOORING_RELAY_EVENT_KIND_SPOOL_REFUSED: return "spool_refused";
    }
    return "unknown";
}

/* How an upstream session ended, as the mooring CLI names it. */
static const char *session_end_name(uint32_t end) {
    switch (end) {
    case MOORING_SESSION_END_LOST: return "SessionLost";
    case MOORING_SESSION_END_EXPIRED: return "SessionExpired";
    case MOORING_SESSION_END_QUEUE_FULL: return "SessionQueueFull";
    case MOORING_SESSION_END_CLOSED: return "SessionClosed";
    case MOORING_SESSION_END_EVICTED: return "SessionEvicted";
    }
    return "unknown";
}

static void print_event(const mooring_relay_event *ev) {
    printf("event=%s", kind_name(ev->kind));
    if (ev->peer[0]) printf(" peer=%s", ev->peer);
    if (ev->id) print_bytes("id", ev->id, ev->id_len);
    if (ev->ack) print_bytes("ack", ev->ack, ev->ack_len);
    if (ev->detail) print_bytes("detail", ev->detail, ev->detail_len);
    if (ev->seq) printf(" seq=%llu", (unsigned long long)ev->seq);
    if (ev->attempt) printf(" attempt=%u", ev->attempt);
    if (ev->session_end != MOORING_SESSION_END_NONE)
        printf(" session_end=%s", session_end_name(ev->session_end));
    if (ev->kind == MOORING_RELAY_EVENT_KIND_SPOOL_OPENED)
        printf(" size=%llu recovered=%llu corrupt=%llu", (unsigned long long)ev->size,
               (unsigned long long)ev->recovered, (unsigned long long)ev->corrupt);
    putchar('\n');
}

/* Prints the stats line when it differs from the last one printed. */
static void print_stats(const mooring_relay_stats *s) {
    static char last[512];
    char line[512];
    snprintf(line, sizeof line,
             "event=stats received=%llu accepted=%llu queued=%llu forwarded=%llu acked=%llu acks_aa=%llu "
             "failed=%llu refused=%llu devices=%llu upstream_connected=%u spool=%u "
             "spool_records=%llu spool_bytes_used=%llu spool_bytes_total=%llu "
             "spool_oldest_age_ms=%llu events_dropped=%llu",
             (unsigned long long)s->received, (unsigned long long)s->accepted,
             (unsigned long long)s->queued, (unsigned long long)s->forwarded,
             (unsigned long long)s->acked, (unsigned long long)s->acks_aa,
             (unsigned long long)s->failed,
             (unsigned long long)s->refused, (unsigned long long)s->devices,
             s->upstream_connected, s->spool, (unsigned long long)s->spool_records,
             (unsigned long long)s->spool_bytes_used, (unsigned long long)s->spool_bytes_total,
             (unsigned long long)s->spool_oldest_age_ms, (unsigned long long)s->events_dropped);
    if (strcmp(line, last) != 0) {
        puts(line);
        memcpy(last, line, sizeof last);
    }
}

static int fail(const char *what, mooring_relay *relay) {
    print_last_error(what);
    mooring_relay_free(relay);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: relay LISTEN UPSTREAM SPOOL_DIR [N]\n");
        return 2;
    }
    unsigned long long want = argc > 4 ? strtoull(argv[4], NULL, 10) : 10;
    mooring_relay_config cfg;
    mooring_relay_config_default(&cfg);
    cfg.listen = argv[1];
    cfg.upstream = argv[2];
    cfg.spool = MOORING_SPOOL_KIND_DIRECTORY;
    cfg.spool_dir = argv[3];
    cfg.spool_size = 4 * 1024 * 1024; /* a small box: 4 MiB on disk */
    cfg.max_frame = 64 * 1024;
    cfg.max_connections = 4;
    cfg.reconnect_min_ms = 50;
    cfg.reconnect_max_ms = 500;
    mooring_relay *relay = NULL;
    char addr[MOORING_ADDR_MAX];
    if (mooring_relay_new(&cfg, &relay) != MOORING_RESULT_OK) return fail("new", relay);
    if (mooring_relay_local_addr(relay, addr, sizeof addr) != MOORING_RESULT_OK)
        return fail("local_addr", relay);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("event=listening addr=%s\n", addr);
    stop_on_signals();

    time_t end = time(NULL) + 20;
    mooring_relay_stats s;
    memset(&s, 0, sizeof s);
    while (!stop && time(NULL) < end) {
        if (mooring_relay_poll(relay, 20) != MOORING_RESULT_OK) return fail("poll", relay);
        mooring_relay_event ev;
        while (mooring_relay_next_event(relay, &ev) == MOORING_RESULT_OK) print_event(&ev);
        if (mooring_relay_get_stats(relay, &s) != MOORING_RESULT_OK) return fail("stats", relay);
        print_stats(&s);
        if (s.acked >= want && s.queued == 0 && s.spool_records == 0) break;
    }
    printf("event=done acked=%llu\n", (unsigned long long)s.acked);
    mooring_relay_free(relay);
    return s.acked >= want ? 0 : 1;
}
