// swift-tools-version:6.0
import PackageDescription

// pgkeep: a backup and restore engine for PostgreSQL.
//
// Every target compiles in the Swift 6 language mode (the default of tools version 6.0), so data
// races are compile errors.
//
// Dependencies are deliberately few: swift-system for typed POSIX calls. Option parsing is our own
// (one option table drives the command line, PGKEEP_* variables and the INI file, see
// Sources/PGKeep/Config), and JSON comes from FoundationEssentials, never full Foundation, because
// PostgreSQL execs `archive-push` once per WAL segment and start-up time is latency.
let package = Package(
    name: "pgkeep",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pgkeep", targets: ["pgkeep"]),
        .executable(name: "pgkeep-fuzz", targets: ["pgkeep-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // One system-library target per C library: a module map and pkg-config, nothing else.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSSL", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        // CPQ has declarations only: libpq is loaded with dlopen by the commands that connect
        // (Sources/PGKeep/Postgres/LibPQ.swift), so neither a link directive nor pkg-config (whose
        // flags would link it).
        .systemLibrary(name: "CPQ", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash", providers: [.apt(["libxxhash-dev"])]),
        // Not a library: glibc calls Swift's Glibc module hides behind _GNU_SOURCE (shim.h says why).
        .systemLibrary(name: "CLinux"),
        // Not a library either: the declaration of libFuzzer's driver, for pgkeep-fuzz (shim.h).
        .systemLibrary(name: "CLibFuzzer"),

        // The library, cut into layers. A target may import only the targets below it, so the
        // layering of ARCHITECTURE.md §1.2 is a compiler rule: a cycle cannot be written. The
        // folders stay under Sources/PGKeep: a target of one folder is that folder, a target of
        // several lists them (`sources`) and excludes the others.
        .target(
            name: "PGKeepCore",
            dependencies: ["CZstd", "CLZ4", "CCrypto", "CXXHash", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/PGKeep", exclude: ["Postgres", "Repository", "Mover", "Archive", "Backup", "Restore", "Verify", "Expire", "Info", "Stanza", "Config", "Fuzz", "Protocol", "Transport", "Agent"],
            sources: ["Errors", "Support", "IO", "Storage"]
        ),
        // The remote protocol's wire format (protocol.md): frames, fields, greeting, errors. Only
        // Core below it, so the agent and its clients share one codec and nothing else leaks in.
        .target(
            name: "PGKeepProtocol",
            dependencies: ["PGKeepCore"],
            path: "Sources/PGKeep/Protocol"
        ),
        // The protocol's transport (protocol.md §7): TCP and TLS 1.3 with libssl, wrapped here once.
        .target(
            name: "PGKeepTransport",
            dependencies: ["PGKeepCore", "PGKeepProtocol", "CSSL"],
            path: "Sources/PGKeep/Transport"
        ),
        // `pgkeep server`, the agent: accepts, authenticates, authorizes and serves requests.
        .target(
            name: "PGKeepAgent",
            dependencies: ["PGKeepCore", "PGKeepProtocol", "PGKeepTransport"],
            path: "Sources/PGKeep/Agent"
        ),
        .target(
            name: "PGKeepPostgres",
            dependencies: ["PGKeepCore", "CPQ", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/PGKeep/Postgres"
        ),
        .target(
            name: "PGKeepRepository",
            dependencies: ["PGKeepCore", "PGKeepPostgres", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/PGKeep/Repository"
        ),
        .target(
            name: "PGKeepMover",
            dependencies: ["PGKeepCore", "PGKeepPostgres", "PGKeepRepository", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/PGKeep/Mover"
        ),
        .target(
            name: "PGKeepEngine",
            dependencies: [
                "PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepMover",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/PGKeep", exclude: ["Errors", "Support", "IO", "Storage", "Postgres", "Repository", "Mover", "Config", "Fuzz", "Protocol", "Transport", "Agent"],
            sources: ["Archive", "Backup", "Restore", "Verify", "Expire", "Info", "Stanza"]
        ),
        .target(
            name: "PGKeepConfig",
            dependencies: ["PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepEngine"],
            path: "Sources/PGKeep/Config"
        ),
        .target(
            name: "PGKeepFuzz",
            dependencies: ["PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepEngine", "PGKeepConfig", "PGKeepProtocol"],
            path: "Sources/PGKeep/Fuzz"
        ),
        .executableTarget(
            name: "pgkeep",
            dependencies: [
                "PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepEngine", "PGKeepConfig", "PGKeepProtocol", "PGKeepTransport", "PGKeepAgent",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The parser fuzzer (Sources/pgkeep-fuzz/FuzzEntry.swift): a libFuzzer binary when `make fuzz`
        // builds it with -D PGKEEP_FUZZ -sanitize=fuzzer,address, an input replayer otherwise.
        .executableTarget(
            name: "pgkeep-fuzz",
            dependencies: ["PGKeepCore", "PGKeepFuzz", "CLibFuzzer"]
        ),
        .target(
            name: "TestSupport",
            dependencies: ["PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepMover", "PGKeepEngine", "PGKeepConfig", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "PGKeepTests",
            dependencies: ["PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepMover", "PGKeepEngine", "PGKeepConfig", "PGKeepFuzz", "PGKeepProtocol", "PGKeepTransport", "PGKeepAgent", "TestSupport", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["PGKeepCore", "PGKeepPostgres", "PGKeepRepository", "PGKeepMover", "PGKeepEngine", "PGKeepConfig", "PGKeepProtocol", "PGKeepTransport", "TestSupport", .product(name: "SystemPackage", package: "swift-system")]
        ),
    ]
)
