import ArgumentParser
import Glibc
import StrataCommands

/// What every debugging command takes: the stack as -o lowerdir=...[,upperdir=...], or a live mount found from
/// the paths; and how to print.
struct InspectionOptions: ParsableArguments {
    @Option(name: .customShort("o"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("The layers, as for mounting (lowerdir=...[,upperdir=...]); paths are then relative to the merged root.",
                               valueName: "options"))
    var options: [String] = []

    @Flag(help: "Print JSON.")
    var json = false

    func style(humanSizes: Bool = false) -> OutputStyle {
        OutputStyle(json: json, aligned: isatty(STDOUT_FILENO) == 1, humanSizes: humanSizes)
    }

    /// Opens the stack, runs `body`, prints what it returns; a failure prints the reason and exits 1.
    func report(paths: [String], _ body: (Inspection) throws(Inspection.Failure) -> String) throws {
        try StrataCommand.printing { try body(try Inspection.open(options: options, paths: paths.map(RawArguments.bytes))) }
    }
}

struct Which: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Which layer serves each path, what it shadows, or which whiteout or opaque directory hides it.")

    @OptionGroup var inspection: InspectionOptions

    @Argument(help: "Paths in a live mount, or relative to the merged root with -o.")
    var paths: [String]

    func run() throws {
        try inspection.report(paths: paths) { stack throws(Inspection.Failure) in try stack.which(style: inspection.style()) }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "The merged listing of a directory with each entry's layer, and the names it hides.",
        helpNames: [.long])

    @OptionGroup var inspection: InspectionOptions

    @Flag(name: .customShort("l"), help: "Show type, mode and size.")
    var long = false

    @Flag(name: .customShort("a"), help: "Show names that start with a dot.")
    var all = false

    @Flag(name: .customShort("h"), help: "Human-readable sizes.")
    var humanSizes = false

    @Argument(help: "A directory in a live mount, or relative to the merged root with -o.")
    var path: String = "."

    func run() throws {
        try inspection.report(paths: [path]) { stack throws(Inspection.Failure) in
            try stack.list(long: long, all: all, style: inspection.style(humanSizes: humanSizes))
        }
    }
}

/// Where `layers`, `explore` and `check` find the stack: a path in a live mount, layer directories, or an image.
struct StackSourceOptions: ParsableArguments {
    @Option(name: .customShort("o"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("The layers, as for mounting (lowerdir=...[,upperdir=...]).", valueName: "options"))
    var options: [String] = []

    @Option(help: ArgumentHelp("An image in an OCI image layout, read from its layer tarballs.", valueName: "dir:tag"))
    var image: String?

    @Argument(help: "A path in a live Strata mount (without -o or --image).")
    var path: String?

    var origin: AnalyzedStack.Origin {
        if let image { return .image(image) }
        return .directories(options: options, path: path.map(RawArguments.bytes))
    }

    func validate() throws {
        if image != nil, !options.isEmpty || path != nil { throw ValidationError("--image takes neither -o nor a path") }
        if image == nil, options.isEmpty, path == nil { throw ValidationError("give a path in a Strata mount, -o lowerdir=..., or --image DIR:TAG") }
    }
}

struct Layers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The stack from top to bottom (entries, bytes, whiteouts, opaque and renamed directories, the bytes upper layers hide) and its efficiency as dive reckons it.",
        helpNames: [.long])

    @OptionGroup var source: StackSourceOptions

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(name: .customShort("h"), help: "Human-readable sizes.")
    var humanSizes = false

    func run() throws {
        try StrataCommand.printing {
            try EfficiencyReports.layers(source.origin, style: OutputStyle(json: json, aligned: isatty(STDOUT_FILENO) == 1, humanSizes: humanSizes))
        }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The changes the upper layer makes, as `podman diff` prints them: A, C or D and the path.")

    @OptionGroup var inspection: InspectionOptions

    @Argument(help: "A path in a live mount (without -o).")
    var path: String?

    func run() throws {
        try inspection.report(paths: path.map { [$0] } ?? []) { stack throws(Inspection.Failure) in
            try stack.diff(style: inspection.style())
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What a live mount's daemon has answered since it was mounted: calls, errors and time per FUSE opcode.")

    @Flag(help: "Print JSON.")
    var json = false

    @Argument(help: "A path in a live Strata mount.")
    var mountpoint: String

    func run() throws {
        try StrataCommand.printing {
            try StatisticsReport.show(mount: mountpoint, style: OutputStyle(json: json, aligned: isatty(STDOUT_FILENO) == 1))
        }
    }
}

struct Refresh: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Makes a live mount read the named paths (or everything) again from its layers, after they were changed underneath it.")

    @Argument(help: "A live Strata mount.")
    var mountpoint: String

    @Argument(help: "Paths in the mount, absolute or relative to its root (none: the whole mount).")
    var paths: [String] = []

    func run() throws {
        try StrataCommand.printing {
            try RefreshRequest.refresh(mount: mountpoint, paths: paths)
            return ""
        }
    }
}
