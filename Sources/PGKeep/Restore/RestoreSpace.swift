#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import PGKeepCore
import PGKeepPostgres
import PGKeepRepository

/// What a restore that ran out of space tells the operator (fault checklist 24): which file
/// system is full (mount point and device), how much room the backup's files take there, and how
/// to finish. The low-level disk-full error names only the file being written, and its generic
/// hint speaks of a repository.
enum RestoreSpace {
    /// Returns `error` unchanged unless it is a disk-full error; then the same code and message,
    /// extended with the space the backup needs on the full file system and how much is free.
    /// - Parameters:
    ///   - roots: the data directory and the tablespace locations; the one whose path the error
    ///     names is taken as the full one (the data directory when none is named).
    ///   - needed: the bytes of the manifest's files under `root`.
    ///   - host: the host the files were written to, which knows its mounts and free space.
    static func explain(_ error: any Error, label: BackupLabel, roots: [String], host: PostgresHostWriting = LocalHost(),
                        needed: (_ root: String) -> UInt64) -> any Error {
        guard let error = error as? PGKeepError, error.code == .diskFull, let first = roots.first else { return error }
        let root = roots.filter { error.message.contains("'\($0)/") || error.message.contains("'\($0)'") }
            .max { $0.count < $1.count } ?? first
        let bytes = needed(root)
        let where_ = host.mountedFileSystem(containing: FilePath(root)).map { "the file system mounted at '\($0.mountPoint)' (\($0.source), \($0.type))" }
            ?? "the file system holding '\(root)'"
        var message = error.message + "; backup \(label) needs \(ProgressFormat.bytes(bytes)) (\(bytes) bytes) under '\(root)' on \(where_)"
        if let free = host.freeBytes(FilePath(root)) { message += ", which has \(ProgressFormat.bytes(free)) free" }
        return PGKeepError(.diskFull, message, hint:
            "make room for \(bytes) bytes under '\(root)' (this restore's files there included) or restore onto a larger file system, "
            + "then run the restore again with --delta: it keeps the files already restored. Until a restore completes, "
            + "the directory has no global/pg_control and PostgreSQL refuses to start it")
    }
}
