import PGKeepCore
import PGKeepRepository
import PGKeepEngine

/// `pgkeep --stanza=main backup [--type=full|diff|incr] [--delta] [--start-fast] [--process-max=N] [--no-resume]
///               [--no-bundle] [--bundle-limit=SIZE] [--bundle-size=SIZE]`
enum BackupCommand {
    static func run(_ context: CommandContext) throws {
        let config = context.config
        let typeName = config.string(.type) ?? "full"
        guard let type = BackupType(rawValue: typeName) else {
            throw PGKeepError(.optionInvalid, "backup type '\(typeName)' is unknown")
        }
        var options = BackupOptions(
            dataDirectory: try context.dataDirectory(), connection: context.connection, type: type,
            compression: try context.compression, compressLevel: try context.compressLevel,
            bufferSize: context.bufferSize, processMax: context.processMax, startFast: config.bool(.startFast),
            archiveTimeout: config.seconds(.archiveTimeout) ?? 60, lockPath: config.string(.lockPath) ?? "/tmp/pgkeep")
        options.delta = config.bool(.delta)
        options.resume = config.bool(.resume)
        options.lease = context.lease
        options.exclude = config.list(.exclude)
        options.checksumPage = config.isExplicit(.checksumPage) ? config.bool(.checksumPage) : nil
        options.archiveCheck = config.bool(.archiveCheck)
        options.archiveCopy = config.bool(.archiveCopy)
        options.annotation = config.map(.annotation)
        options.bundle = BundleOptions(enabled: config.bool(.bundle),
                                       limit: UInt64(config.size(.bundleLimit) ?? Int(BundleOptions.defaultLimit)),
                                       size: UInt64(config.size(.bundleSize) ?? Int(BundleOptions.defaultSize)))
        let summary = try BackupRun(storage: context.storage, host: context.host, layout: try context.layout(), options: options, log: context.log).run()
        print("\(summary.type.rawValue) backup \(summary.label) complete: \(summary.fileCount) files, \(summary.size) bytes (\(summary.repoSize) in the repository), WAL \(summary.walStart) ... \(summary.walStop)")

        // pgBackRest's expire-auto: retention applies after every successful backup.
        let policy = context.retention
        if config.bool(.expireAuto) && policy.isSet {
            var expire = ExpireOptions(policy: policy, set: nil, dryRun: false, lockPath: context.lockPath)
            expire.lease = context.lease
            let outcome = try ExpireRun(storage: context.storage, layout: try context.layout(), options: expire, log: context.log).run()
            for line in outcome.lines where !outcome.expired.isEmpty || !outcome.wal.isEmpty || !outcome.orphans.isEmpty { print(line) }
        }
    }
}
