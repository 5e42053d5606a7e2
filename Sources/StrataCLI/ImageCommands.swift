import ArgumentParser
import Glibc
import Strata
import StrataCommands

/// Where `commit` and `import` write the layer.
struct LayerDestinations: ParsableArguments {
    @Option(help: ArgumentHelp("Write the layer as a tarball.", valueName: "file"))
    var tar: String?

    @Flag(help: "Compress the layer with gzip (reproducibly: no timestamp).")
    var gzip = false

    @Option(help: ArgumentHelp("Append the layer to the image TAG in the OCI image layout DIR (created if missing).",
                               valueName: "dir:tag"))
    var oci: String?
}

struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The upper layer as an OCI image layer: a tarball, an image in an OCI layout, or a layer directory.")

    @Option(name: .customShort("o"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("The layers, as for mounting: lowerdir=...,upperdir=DIR.", valueName: "options"))
    var options: [String] = []

    @OptionGroup var destination: LayerDestinations

    @Option(help: ArgumentHelp("With --oci: build on this tag of the same layout.", valueName: "tag"))
    var from: String?

    @Option(help: ArgumentHelp("Also write the layer as a directory in the kernel's format, to stack as a lowerdir.",
                               valueName: "dir"))
    var layerDir: String?

    func validate() throws {
        if destination.tar == nil, destination.oci == nil, layerDir == nil {
            throw ValidationError("give --tar FILE, --oci DIR:TAG or --layer-dir DIR")
        }
    }

    func run() throws {
        try StrataCommand.printing {
            try ImageCommands.commit(options: options, to: .init(tar: destination.tar, gzip: destination.gzip,
                                                                  layout: destination.oci, base: from, layerDirectory: layerDir))
        }
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "A plain directory (a root filesystem) as the first layer of an image.")

    @Argument(help: "The directory.")
    var directory: String

    @OptionGroup var destination: LayerDestinations

    func validate() throws {
        if destination.tar == nil, destination.oci == nil { throw ValidationError("give --tar FILE or --oci DIR:TAG") }
    }

    func run() throws {
        try StrataCommand.printing {
            try ImageCommands.importDirectory(directory, to: .init(tar: destination.tar, gzip: destination.gzip,
                                                                   layout: destination.oci, base: nil, layerDirectory: nil),
                                              warn: DaemonLog.complain)
        }
    }
}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every layer of an image in an OCI layout into its own directory; prints the lowerdir= that mounts them.")

    @Argument(help: ArgumentHelp("The image, as DIR:TAG.", valueName: "dir:tag"))
    var image: String

    @Argument(help: "Where the layer directories go (DEST/0 is the bottom layer).")
    var destination: String

    @Option(help: "How whiteouts are written: chardev (as the kernel) or file (.wh.NAME).")
    var whiteout: String = "chardev"

    func run() throws {
        try StrataCommand.printing {
            try ImageCommands.unpack(image, into: destination, whiteouts: whiteout, warn: DaemonLog.complain)
        }
    }
}
