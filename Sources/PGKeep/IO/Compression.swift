/// The compression formats pgkeep stores files in, and the one place that maps a format to its
/// file extension, levels and filters.
///
/// Each format writes exactly one standard frame per file with a content checksum, readable by
/// the stock `lz4` and `zstd` tools.
public enum CompressionType: String, CaseIterable, Sendable {
    /// Stored as is.
    case none
    /// lz4 frame format: fastest, moderate ratio.
    case lz4
    /// Zstandard: better ratio at modest cost.
    case zst

    /// The extension appended to a stored file's name (`000000010000000000000001.zst`), nil for
    /// uncompressed files.
    public var fileExtension: String? {
        switch self {
        case .none: return nil
        case .lz4: return "lz4"
        case .zst: return "zst"
        }
    }

    /// The level used when none is configured: the fast end for both codecs, because backups and
    /// WAL archiving are usually limited by how quickly bytes are compressed, not stored.
    public var defaultLevel: Int {
        switch self {
        case .none: return 0
        case .lz4: return 1
        case .zst: return 3
        }
    }

    /// The levels accepted for this format.
    ///
    /// - lz4: 0...12 with LZ4F's meaning: 0-2 are the fast compressor (identical output), 3-12 the
    ///   high-compression compressor. LZ4F's negative "acceleration" levels are not offered.
    /// - zst: 1...19. Level 0 is excluded because zstd reads it as "default" (3), which would be
    ///   confusing; 20-22 ("ultra") are excluded because they need a window larger than decoders
    ///   accept by default, so `zstd -d` would refuse the files without `--long`/`--memory`.
    /// - none: only 0.
    public var validLevels: ClosedRange<Int> {
        switch self {
        case .none: return 0...0
        case .lz4: return 0...12
        case .zst: return 1...19
        }
    }

    /// A filter that compresses a stream into one frame of this format, or nil for `.none`.
    /// Internal to `PGKeepCore`, like the codec filters' initializers: only `ObjectCodec` makes
    /// codecs, and reuses each; the engine gets its chains from it.
    /// - Parameters:
    ///   - level: must be in `validLevels`; otherwise throws `optionInvalid`.
    ///   - bufferSize: the codec's output buffer size (for lz4, the input slice it is sized for).
    func makeCompressFilter(level: Int, bufferSize: Int) throws(PGKeepError) -> Filter? {
        switch self {
        case .none:
            guard validLevels.contains(level) else { throw levelError(level) }
            return nil
        case .lz4: return try LZ4CompressFilter(level: level, bufferSize: bufferSize)
        case .zst: return try ZstdCompressFilter(level: level, bufferSize: bufferSize)
        }
    }

    /// A filter that decompresses one frame of this format, or nil for `.none`.
    ///
    /// `frameChecksum: .skip` is for callers that compare every decoded byte with a reference
    /// themselves (restore: the SHA-256 of the output against the manifest before the file is
    /// accepted; a duplicate archive-push: the bytes of the file being pushed); lz4 then skips its
    /// content checksum (the costly part of decoding it), zstd verifies its checksum anyway (its
    /// switch is experimental API, and it is cheap there). Verify keeps the codec's check.
    func makeDecompressFilter(bufferSize: Int, frameChecksum: FrameChecksum = .verify) throws(PGKeepError) -> Filter? {
        switch self {
        case .none: return nil
        case .lz4: return try LZ4DecompressFilter(bufferSize: bufferSize, frameChecksum: frameChecksum)
        case .zst: return try ZstdDecompressFilter(bufferSize: bufferSize)
        }
    }

    /// The error for a level outside `validLevels`. Configuration should have rejected it first;
    /// the codecs check again so that no path can hand a C library an unchecked value.
    func levelError(_ level: Int) -> PGKeepError {
        PGKeepError(.optionInvalid, "compress-level \(level) is not valid for compress-type \(rawValue)",
                    hint: "use a level in \(validLevels.lowerBound)...\(validLevels.upperBound) for \(rawValue), or omit compress-level to use \(defaultLevel)")
    }
}

/// Whether a decompressor checks the frame's own content checksum.
public enum FrameChecksum: Sendable {
    /// Verified: a damaged frame is an error (the default, and the only choice when the decoded
    /// bytes are not checked otherwise).
    case verify
    /// Not checked, where the codec allows it: the caller compares every decoded byte with a
    /// reference, which catches more than a 32-bit checksum could.
    case skip
}
