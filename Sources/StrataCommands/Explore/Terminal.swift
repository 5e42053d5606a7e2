import CCurses
import Glibc

/// The full-screen terminal, through ncurses: one thread draws and reads keys; ncurses owns the escape codes,
/// the key decoding and the resize (`KEY_RESIZE` after SIGWINCH).
struct Terminal: ~Copyable {
    enum Style {
        case plain, bold, dim, reverse, added, modified, removed, title
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init() throws(Failure) {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
            throw Failure(description: "explore needs a terminal (stdin and stdout)")
        }
        _ = setlocale(LC_ALL, "")
        guard initscr() != nil else { throw Failure(description: "cannot start the terminal (TERM=\(getenv("TERM").map { String(cString: $0) } ?? ""))") }
        raw()
        noecho()
        nonl()
        keypad(CCurses_screen(), true)
        set_escdelay(25)
        curs_set(0)
        if has_colors() {
            start_color()
            use_default_colors()
            init_pair(1, Int16(COLOR_GREEN), -1)
            init_pair(2, Int16(COLOR_YELLOW), -1)
            init_pair(3, Int16(COLOR_RED), -1)
            init_pair(4, Int16(COLOR_CYAN), -1)
        }
    }

    deinit { endwin() }

    var rows: Int { Int(CCurses_lines()) }
    var columns: Int { Int(CCurses_columns()) }

    func clear() { erase() }

    /// Draws `text` at (row, column), cut to `width` columns.
    func draw(_ text: String, row: Int, column: Int, width: Int, style: Style = .plain) {
        guard row >= 0, row < rows, column < columns, width > 0 else { return }
        let fitted = String(text.unicodeScalars.prefix(min(width, columns - column)).map(Character.init))
        let attributes = attributes(style)
        attron(attributes)
        _ = fitted.withCString { mvaddstr(Int32(row), Int32(column), $0) }
        attroff(attributes)
    }

    private func attributes(_ style: Style) -> Int32 {
        switch style {
        case .plain: 0
        case .bold: CCurses_attr_bold()
        case .dim: CCurses_attr_dim()
        case .reverse: CCurses_attr_reverse()
        case .added: CCurses_color_pair(1)
        case .modified: CCurses_color_pair(2)
        case .removed: CCurses_attr_dim() | CCurses_color_pair(3)
        case .title: CCurses_attr_bold() | CCurses_color_pair(4)
        }
    }

    func show() { refresh() }

    /// The next key: a character code, a control code (Ctrl-A is 1), or one of ncurses' KEY_ codes.
    func key() -> Int32 { getch() }
}
