import PGKeepEngine

/// `pgkeep --stanza=main expire [--repo1-retention-full=N] [--set=LABEL] [--dry-run]`
enum ExpireCommand {
    static func run(_ context: CommandContext) throws {
        var options = ExpireOptions(policy: context.retention, set: try context.setLabel(),
                                    dryRun: context.config.bool(.dryRun), lockPath: context.lockPath)
        options.lease = context.lease
        let outcome = try ExpireRun(storage: context.storage, layout: try context.layout(), options: options, log: context.log).run()
        for line in outcome.lines { print(line) }
    }
}
