#ifndef STRATA_CCURSES_SHIM_H
#define STRATA_CCURSES_SHIM_H
/* ncurses for `strata explore`. Its attributes and color pairs are macros Swift cannot import; each is one
   line here, so that no escape code is written by hand. */
#define NCURSES_WIDECHAR 1
#include <ncurses.h>

static inline int CCurses_attr_bold(void) { return A_BOLD; }
static inline int CCurses_attr_dim(void) { return A_DIM; }
static inline int CCurses_attr_reverse(void) { return A_REVERSE; }
static inline int CCurses_attr_underline(void) { return A_UNDERLINE; }
static inline int CCurses_color_pair(short pair) { return COLOR_PAIR(pair); }
static inline int CCurses_key_resize(void) { return KEY_RESIZE; }
/* ncurses' screen and its size are globals that Swift 6 will not read unguarded; only the explorer's one thread
   touches them. */
static inline WINDOW *CCurses_screen(void) { return stdscr; }
static inline int CCurses_lines(void) { return LINES; }
static inline int CCurses_columns(void) { return COLS; }
#endif
