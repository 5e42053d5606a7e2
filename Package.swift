// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Strata",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "strata", targets: ["StrataCLI"]),
        .executable(name: "strata-mountd", targets: ["StrataDaemon"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .target(name: "CLinux", cSettings: [.define("_GNU_SOURCE")], linkerSettings: [.linkedLibrary("uring")]),
        .target(name: "FuseKit", dependencies: [
            "CFuse3", "CLinux",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "Overlay", dependencies: [
            "CLinux",
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["CONCURRENCY.md"]),
        .systemLibrary(name: "CCurses", providers: [.apt(["libncurses-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .target(name: "OCI", dependencies: [
            "CArchive", "CLinux", "Overlay",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Serving a mount: what the daemon runs. No Foundation here or below, so that the daemon maps none.
        .target(name: "Strata", dependencies: [
            "FuseKit", "Overlay",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "StrataCommands", dependencies: [
            "Strata", "Overlay", "OCI", "CCurses",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // The mount daemon `strata` hands a mount to: its own executable, with Swift's libraries linked in, so that
        // its memory holds only what serving needs (the CLI's Foundation, argument parser and crypto are not mapped).
        .executableTarget(name: "StrataDaemon", dependencies: ["Strata"],
                          linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        .executableTarget(name: "StrataCLI", dependencies: [
            "Strata", "StrataCommands",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "OverlayTests", dependencies: ["Overlay", "CLinux"]),
        .testTarget(name: "StrataTests", dependencies: ["Strata", "StrataCommands", "StrataCLI"]),
    ]
)
