// swift-tools-version: 6.1
import PackageDescription

/// One strictness block for every target (Swift 6 language mode is the package default below).
/// On x86_64 the numeric code is built for Haswell (AVX2 + FMA): the baseline SSE2 target splits
/// SIMD8 and turns every fused multiply-add into a libm call (../shared/PLATFORM.md measured 33x).
/// `DROPLINE_PORTABLE=1` builds for the baseline instead.
let portable = Context.environment["DROPLINE_PORTABLE"] == "1"
var strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
#if arch(x86_64)
if !portable { strictness.append(.unsafeFlags(["-target-cpu", "haswell"])) }
#endif
let cStrictness: [CSetting] = [.unsafeFlags(["-O2", "-Wall", "-Werror=implicit-function-declaration"])]

let package = Package(
    name: "dropline",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "dropline", targets: ["dropline"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.25.0"),
    ],
    targets: [
        // Layers, from the real imports (a module imports only from layers below it):
        // C: system libraries and the C shim. L0 pure code, values in and values out. L1 files and
        // system calls. L2 hashing and JSON files. L3 the engine, images and the I/O modules (the
        // watcher, the rules file, the index). L4 models and datasets. L5 monitoring and explanations.
        // L6 the components and pipelines; benchmarks. L7 the reports. L8 the daemon. L9 the drift
        // study. L10 the executable: argument parsing and wiring only.
        .target(
            name: "CCodecs",
            cSettings: cStrictness,
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("z")]
        ),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Debian's libdnnl-dev has no pkg-config file: linked by name.
        .systemLibrary(name: "CDNNL"),
        // L0
        .target(name: "Randomness", swiftSettings: strictness),
        .target(name: "Tensor", swiftSettings: strictness),
        .target(name: "DriftStatistics", swiftSettings: strictness),
        .target(name: "DroplineSupport", swiftSettings: strictness),
        .target(name: "Charts", swiftSettings: strictness),
        // L1: files and system calls (no-follow reads, atomic writes, errno-carrying errors).
        .target(name: "SystemFiles", dependencies: ["DroplineSupport"], swiftSettings: strictness),
        // L2: SHA-256 content hashes (OpenSSL); Dropline's snake_case JSON files.
        .target(name: "Hashing", dependencies: ["CCrypto", "SystemFiles"], swiftSettings: strictness),
        .target(name: "JSONFiles", dependencies: ["SystemFiles"], swiftSettings: strictness),
        // L3: decoding and transforming images; the CNN engine on oneDNN; noticing batches (scans,
        // inotify, polling); the rules file; the root folder, the output tree and the index.
        .target(name: "Imaging", dependencies: ["CCodecs", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        .target(name: "NeuralNetwork", dependencies: ["CDNNL", "Tensor", "Randomness"], swiftSettings: strictness),
        .target(name: "FolderWatch", dependencies: ["DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        .target(name: "Rules", dependencies: ["DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", .product(name: "Yams", package: "Yams")], swiftSettings: strictness),
        .target(name: "Store", dependencies: ["DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", .product(name: "GRDB", package: "GRDB.swift"),
                                              .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOCore", package: "swift-nio"),
                                              .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                                              .product(name: "Logging", package: "swift-log")], swiftSettings: strictness),
        // L4: training, evaluation and model artifacts; labelled datasets (the study's drift stages, Fashion-MNIST).
        .target(name: "Modeling", dependencies: ["NeuralNetwork", "Imaging", "Tensor", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        .target(name: "Datasets", dependencies: ["CCodecs", "Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        // L5: drift monitoring; integrated-gradients explanations.
        .target(name: "Monitoring", dependencies: ["DriftStatistics", "Modeling", "NeuralNetwork", "Imaging", "Tensor", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"],
                swiftSettings: strictness),
        .target(name: "Explainability", dependencies: ["NeuralNetwork", "Tensor", "Modeling", "Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        // L6: the four components with train and serve modes, the two pipelines; measurements against peers.
        .target(name: "Pipeline", dependencies: ["FolderWatch", "Rules", "Modeling", "Monitoring", "Explainability", "Imaging", "Store", "DriftStatistics", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles",
                                                 .product(name: "Logging", package: "swift-log")],
                swiftSettings: strictness),
        .target(name: "Benchmarks", dependencies: ["FolderWatch", "Imaging", "NeuralNetwork", "Tensor", "Modeling", "DriftStatistics", "Explainability", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        // L7: the run pages, the dashboard and the metrics file, from the run folders and the index.
        .target(name: "Reports", dependencies: ["Charts", "Pipeline", "Store", "Monitoring", "DriftStatistics", "Explainability", "Modeling", "Imaging", "Tensor", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles",
                                                .product(name: "Prometheus", package: "swift-prometheus")], swiftSettings: strictness),
        // L8: the watch daemon, as a service.
        .target(name: "Daemon", dependencies: ["FolderWatch", "Rules", "Pipeline", "Reports", "Store", "Modeling", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles",
                                               .product(name: "Logging", package: "swift-log"),
                                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                               .product(name: "UnixSignals", package: "swift-service-lifecycle")], swiftSettings: strictness),
        // L9: the drift study, end to end through the real daemon.
        .target(name: "Simulation", dependencies: ["Datasets", "Daemon", "Pipeline", "Store", "Modeling", "Monitoring", "Imaging", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles",
                                                   .product(name: "Logging", package: "swift-log")], swiftSettings: strictness),
        // L10: argument parsing and wiring only.
        .executableTarget(
            name: "dropline",
            dependencies: [
                "Imaging", "Benchmarks", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", "Modeling", "NeuralNetwork", "Monitoring", "DriftStatistics", "Explainability", "Store", "Pipeline", "Reports", "Rules", "Daemon", "Datasets", "Simulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(name: "RandomnessTests", dependencies: ["Randomness"], swiftSettings: strictness),
        .testTarget(name: "ChartsTests", dependencies: ["Charts"], swiftSettings: strictness),
        .testTarget(name: "RulesTests", dependencies: ["Rules"], swiftSettings: strictness),
        .testTarget(
            name: "ImagingTests",
            dependencies: ["Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"],
            exclude: ["Fixtures"],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "NeuralNetworkTests",
            dependencies: ["NeuralNetwork", "Tensor", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", "Imaging"],
            exclude: ["Fixtures"],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "ModelingTests",
            dependencies: ["Modeling", "NeuralNetwork", "Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"],
            exclude: ["Fixtures"],
            swiftSettings: strictness
        ),
        .testTarget(name: "DriftStatisticsTests", dependencies: ["DriftStatistics"], exclude: ["Fixtures"], swiftSettings: strictness),
        .testTarget(name: "MonitoringTests", dependencies: ["Monitoring", "DriftStatistics", "Modeling", "Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"],
                    exclude: ["Fixtures"], swiftSettings: strictness),
        .testTarget(name: "ExplainabilityTests", dependencies: ["Explainability", "NeuralNetwork", "Modeling", "Imaging", "Tensor", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"],
                    exclude: ["Fixtures"], swiftSettings: strictness),
        // A real network share for tests (a loopback SFTP server, sshfs clients), shared by the test targets that need one.
        .target(name: "ShareSupport", path: "Tests/ShareSupport", swiftSettings: strictness),
        .testTarget(name: "StoreTests", dependencies: ["Store", "ShareSupport", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: strictness),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Reports", "Rules", "Explainability", "Monitoring", "Store", "Modeling", "Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles",
                                                        .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: strictness),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Store", "Modeling", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift")],
                    swiftSettings: strictness),
        .testTarget(name: "FolderWatchTests", dependencies: ["FolderWatch", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Imaging", "Randomness", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles"], swiftSettings: strictness),
        .testTarget(name: "SupportTests", dependencies: ["DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", "Tensor"], exclude: ["Fixtures"], swiftSettings: strictness),
        .testTarget(name: "CLITests", dependencies: ["ShareSupport", "DroplineSupport", "SystemFiles", "Hashing", "JSONFiles", "Imaging", "Randomness", .product(name: "GRDB", package: "GRDB.swift")], swiftSettings: strictness),
    ],
    swiftLanguageModes: [.v6]
)
