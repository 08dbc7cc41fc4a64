import PGKeepEngine

/// `pgkeep --stanza=main --pg1-path=DIR stanza-upgrade`, after pg_upgrade and before the new
/// cluster archives (its archive-push fails until then, so no WAL is lost: PostgreSQL retries).
enum StanzaUpgradeCommand {
    static func run(_ context: CommandContext) throws {
        var options = StanzaUpgradeOptions(dataDirectory: try context.dataDirectory(), lockPath: context.lockPath)
        options.lease = context.lease
        let layout = try context.layout()
        switch try StanzaUpgrade(storage: context.storage, host: context.host, layout: layout, options: options, log: context.log).run() {
        case .upgraded(let from, let to):
            print("stanza '\(layout.stanza)' upgraded from PostgreSQL \(from.version) (database \(from.id), archive id \(from.archiveID)) to PostgreSQL \(to.version) (database \(to.id), archive id \(to.archiveID), system identifier \(to.systemIdentifier))")
        case .alreadyCurrent(let identity):
            print("stanza '\(layout.stanza)' is already current for this cluster: PostgreSQL \(identity.version), database \(identity.id)")
        }
    }
}
