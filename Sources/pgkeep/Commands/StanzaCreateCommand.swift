import PGKeepEngine

/// `pgkeep --stanza=main stanza-create`
enum StanzaCreateCommand {
    static func run(_ context: CommandContext) throws {
        let outcome = try StanzaCreate(storage: context.storage, host: context.host, layout: try context.layout(), log: context.log)
            .run(dataDirectory: try context.required(.pg1Path))
        switch outcome {
        case .created: print("stanza '\(try context.layout().stanza)' created")
        case .alreadyExists: print("stanza '\(try context.layout().stanza)' already exists and matches the cluster")
        }
    }
}
