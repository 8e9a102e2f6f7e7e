/* ui.h — entry point of the explorer (the ncurses TUI). Only src/ui/ includes curses.
 *
 * ui_main parses `[MODEL.onnx] [--data DIR] [--plan FILE] [--no-color]`, loads the model (the
 * shipped one when none is given) and the best CIFAR-10 set it can find, then runs the explorer
 * until the user quits. Errors found before the screen opens are printed on stderr; the terminal
 * is always restored. Returns the process exit code (0 ok, 1 failure, 2 usage).
 */
#ifndef RANKSCOPE_UI_H
#define RANKSCOPE_UI_H

int ui_main(int argc, char **argv);

#endif
