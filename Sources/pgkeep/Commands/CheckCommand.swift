import PGKeepEngine

/// `pgkeep --stanza=main check [--archive-timeout=SECONDS]`: exits 0 only when a backup and
/// archiving would work now (`CheckRun` lists the steps).
enum CheckCommand {
    static func run(_ context: CommandContext) throws {
        let options = CheckOptions(dataDirectory: try context.dataDirectory(), connection: context.connection,
                                   archiveTimeout: context.config.seconds(.archiveTimeout) ?? 60, lockPath: context.lockPath)
        let report = try CheckRun(storage: context.storage, host: context.host, layout: try context.layout(), options: options, log: context.log).run()
        for line in report.lines { print(line) }
        print("check of stanza '\(try context.layout().stanza)' passed")
    }
}
