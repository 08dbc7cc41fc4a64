import PGKeepEngine

/// `pgkeep --stanza=main stanza-repair [--pg1-path=DIR] [--dry-run] [--force]`
enum StanzaRepairCommand {
    static func run(_ context: CommandContext) throws {
        var options = StanzaRepairOptions(dataDirectory: context.config.string(.pg1Path), force: context.config.bool(.force),
                                          dryRun: context.config.bool(.dryRun), lockPath: context.lockPath)
        options.lease = context.lease
        let report = try StanzaRepair(storage: context.storage, host: context.host, layout: try context.layout(), options: options, log: context.log).run()
        for line in report.lines { print(line) }
    }
}
