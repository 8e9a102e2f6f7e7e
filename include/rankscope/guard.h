/* guard.h — checks every path that reads or writes weights shares: finite values, and names made
 * safe to show on a terminal.
 *
 * Contract:
 *  - guard_model_finite scans every float initializer of m and fails on the first one holding a
 *    NaN or an infinity, with one line naming it, the first bad index, what it holds and how many
 *    non-finite values it has in all:
 *      `initializer "fc1.weight" holds NaN at index 3 (2 non-finite values of 61440)`.
 *    It returns 0 when every value is finite. guard_floats_finite is the same check on one
 *    array (name names it in the message).
 *  - guard_quote writes s into buf (always NUL-terminated, truncated with "..." when it does not
 *    fit) in the style of `ls` on a terminal: unchanged when s holds only printable characters
 *    and none of the shell's special ones; otherwise in single quotes, each control byte
 *    (0x01-0x1f, 0x7f) outside them as $'\ooo' (octal), a single quote as '\'' — a string a
 *    shell reads back as the exact name: "a<ESC>b" -> 'a'$'\033''b'. Bytes >= 0x80 (UTF-8) pass
 *    through. Returns buf.
 *  - Neither function allocates, prints or exits.
 */
#ifndef RANKSCOPE_GUARD_H
#define RANKSCOPE_GUARD_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include "rankscope/common.h"
#include "rankscope/model.h"

int guard_model_finite(const rs_model *m, rs_err *e);
int guard_floats_finite(const float *x, size_t n, const char *name, rs_err *e);
const char *guard_quote(char *buf, size_t len, const char *s);

#pragma GCC visibility pop
#endif
