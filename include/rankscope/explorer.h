/* explorer.h — the one entry point of the explorer (the ncurses TUI, src/ui/), for the CLI's
 * `rankscope [MODEL.onnx]`. Only src/ui/ includes curses; src/cli and src/ui include nothing of
 * each other's.
 *
 * ui_main parses `[MODEL.onnx] [--data DIR] [--plan FILE] [--no-color]`, loads the model (the
 * shipped one when none is given) and the best CIFAR-10 set it can find, then runs the explorer
 * until the user quits. Errors found before the screen opens are printed on stderr; the terminal
 * is always restored. Returns the process exit code (0 ok, 1 failure, 2 usage), as the
 * subcommands do.
 */
#ifndef RANKSCOPE_EXPLORER_H
#define RANKSCOPE_EXPLORER_H

#pragma GCC visibility push(default)

int ui_main(int argc, char **argv);

#pragma GCC visibility pop

#endif
