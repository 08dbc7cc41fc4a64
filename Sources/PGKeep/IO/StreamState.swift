/// Where a codec filter is in its stream, plus the error texts the codecs share.
///
/// The `Filter` contract makes results final at `finish` until `reset`; a codec that was handed
/// more bytes after `finish` would otherwise start a second frame (compressors) or treat them as
/// trailing data (decompressors) and hide the missing `reset`, so that misuse is an error.
enum StreamState {
    /// Reset (or new); nothing written yet.
    case idle
    /// Bytes have been processed; `finish` not yet called.
    case started
    /// `finish` was called; only `reset` is allowed.
    case finished

    /// The error for `process` or `finish` after `finish` without `reset`.
    static func usedAfterFinish(_ codec: String) -> PGKeepError {
        PGKeepError(.internal, "\(codec): the filter was used after finish without reset",
                    hint: "this is a defect in pgkeep; report it")
    }

    /// Hint for a decoder that met bytes it cannot decode.
    static let corruptHint =
        "the stored file is corrupt or was not written by pgkeep; run verify on this backup or archive and restore from another one if it fails"

    /// Hint for a stream that ended before the end of its frame.
    static let truncatedHint =
        "the stored file is incomplete (an interrupted copy or a damaged repository); run verify on this backup or archive and restore from another one if it fails"

    /// Hint for an encoder failure, which no input can cause.
    static let codecDefectHint =
        "the compression library failed on valid input, which points at a defect or exhausted memory; report it with the pgkeep and library versions"
}
