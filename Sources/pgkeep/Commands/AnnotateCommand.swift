import PGKeepCore
import PGKeepEngine

/// `pgkeep --stanza=main annotate --set=LABEL --annotation=KEY=VALUE [--annotation=KEY= ...]`:
/// sets (or, with nothing after `=`, removes) notes of a completed backup.
enum AnnotateCommand {
    static func run(_ context: CommandContext) throws {
        // `--set` has restore's default (latest), so the table cannot require it; here it is.
        guard context.config.string(.set) != nil else {
            throw PGKeepError(.optionRequired, "annotate requires option --set", hint: "name the backup by its label: 'pgkeep info' lists them")
        }
        guard let label = try context.setLabel() else {
            throw PGKeepError(.optionInvalid, "annotate needs the label of one backup, not --set=latest",
                              hint: "'pgkeep info' lists the labels")
        }
        var options = AnnotateOptions(label: label, changes: context.config.map(.annotation), lockPath: context.lockPath)
        options.lease = context.lease
        let notes = try BackupAnnotation(storage: context.storage, layout: try context.layout(), options: options, log: context.log).run()
        print("backup \(label): " + (notes.isEmpty ? "no annotations" : BackupAnnotation.describe(notes)))
    }
}
