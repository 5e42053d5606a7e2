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
#endif
