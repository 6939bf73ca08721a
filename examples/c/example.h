/* What the C examples share: stopping on SIGINT/SIGTERM, printing a peer's
 * bytes as one key=value value, and reporting a failed call. Included as
 * "example.h", so it is found beside the example without another -I. */
#ifndef MOORING_EXAMPLE_H
#define MOORING_EXAMPLE_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include "mooring.h"

/* Set once SIGINT or SIGTERM arrives: the example's loop then ends. */
static volatile sig_atomic_t stop;
static inline void on_signal(int sig) { (void)sig; stop = 1; }

/* Sets `stop` on SIGINT and SIGTERM. */
static inline void stop_on_signals(void) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

/* Prints `n` bytes as one key=value value: bytes outside printable ASCII,
 * spaces and '=' become '_' (as in the mooring CLI), so a peer's bytes can
 * never start a line or a key of their own. */
static inline void print_value(const void *bytes, size_t n) {
    const unsigned char *s = bytes;
    for (size_t i = 0; i < n; i++) putchar(s[i] > ' ' && s[i] < 0x7f && s[i] != '=' ? s[i] : '_');
}

/* Prints `what: <the library's last error>` to stderr. */
static inline void print_last_error(const char *what) {
    char text[256];
    mooring_last_error(text, sizeof text);
    fprintf(stderr, "%s: %s\n", what, text);
}

#endif
