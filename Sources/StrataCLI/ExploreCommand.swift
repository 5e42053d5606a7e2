import ArgumentParser
import StrataCommands

/// dive's browser, on a live mount, layer directories or an OCI image.
struct Explore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A full-screen browser of the stack: its layers, the merged tree marked added, modified, removed or unchanged, which layer serves each path, and the wasted space.",
        discussion: "Keys (as in dive): Tab switches pane; arrows, j/k, PgUp/PgDn move; Space folds a directory; Ctrl-A, Ctrl-R, Ctrl-M and Ctrl-U show or hide added, removed, modified and unchanged entries; Ctrl-L switches between the layer's own changes and the aggregate through it; Ctrl-F searches names; q quits.")

    @OptionGroup var source: StackSourceOptions

    func run() throws {
        try StrataCommand.printing {
            try Explorer.run(source.origin)
            return ""
        }
    }
}
