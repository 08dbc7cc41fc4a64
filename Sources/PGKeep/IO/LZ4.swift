import CLZ4

// The lz4 *frame* format (LZ4F_*), the format the `lz4` command line tool reads and writes, so an
// operator can always inspect a stored file with stock tools.
//
// Frames are written with:
// - 64 KiB linked blocks: lz4's default, which lets each block refer back to the previous one (a
//   better ratio than independent blocks) while the decoder needs only 64 KiB of history;
// - no content checksum. Every stored object is covered twice by SHA-256 already (the stored bytes'
//   `repoChecksum` and the original bytes' `checksum`, or the archive name), both checked on
//   restore; lz4's XXH32 on top cost as much CPU as the compression itself (`lz4 -1` on a 466 MB
//   table file: 0.61 s of CPU with the frame checksum, 0.37 s without). Frames written by earlier
//   versions carry one; the decoder checks it unless its caller compares the output's SHA-256
//   with a recorded digest (restore, duplicate archive-push: `frameChecksum: .skip`).

/// Compresses a stream into a single lz4 frame.
///
/// The `LZ4F_cctx` and the output buffer are allocated once; `reset()` makes both ready for the
/// next stream (`LZ4F_compressBegin` fully re-initialises the context, even after an abandoned or
/// failed stream). The frame header is written lazily by the first `process` or by `finish`, so an
/// empty input still produces a complete, valid frame.
public final class LZ4CompressFilter: Filter {
    private let context: OpaquePointer
    private var preferences: LZ4F_preferences_t
    /// The most input handed to one `LZ4F_compressUpdate`, so that its worst-case output
    /// (`LZ4F_compressBound(chunkSize)`) always fits in `output` once that has been flushed.
    private let chunkSize: Int
    private var output: PendingOutput
    private var state = StreamState.idle

    /// Creates a compressor.
    /// - Parameters:
    ///   - level: lz4 level as LZ4F defines it, 0...12: 0-2 all mean the fast compressor, 3-12
    ///     the high-compression (HC) compressor, slower and denser as the level rises.
    ///   - bufferSize: the largest input slice compressed at once; the output buffer is sized with
    ///     `LZ4F_compressBound` for it, so it is a little larger than `bufferSize` plus one block.
    ///   - contentChecksum: add lz4's XXH32 of the content, as pgkeep before 0.4 did (tests use it
    ///     to write such frames; the repository does not need it, see the top of this file).
    init(level: Int, bufferSize: Int, contentChecksum: Bool = false) throws(PGKeepError) {
        guard CompressionType.lz4.validLevels.contains(level) else {
            throw CompressionType.lz4.levelError(level)
        }
        precondition(bufferSize > 0, "LZ4CompressFilter bufferSize must be positive")
        var preferences = LZ4F_preferences_t()
        preferences.compressionLevel = Int32(level)
        preferences.frameInfo.blockSizeID = LZ4F_max64KB
        preferences.frameInfo.blockMode = LZ4F_blockLinked
        preferences.frameInfo.contentChecksumFlag = contentChecksum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum
        // autoFlush stays 0: lz4 gathers small inputs into whole blocks, so drip-fed input still
        // compresses as well as input given in large slices.
        self.preferences = preferences
        chunkSize = bufferSize
        // compressBound(n) >= compressBound(0) covers LZ4F_compressEnd too; the header is separate.
        let bound = LZ4F_compressBound(bufferSize, &preferences)
        output = PendingOutput(capacity: max(bound, Int(LZ4F_HEADER_SIZE_MAX)))

        var context: OpaquePointer?
        try lz4Check(LZ4F_createCompressionContext(&context, UInt32(LZ4F_VERSION)),
                     "lz4 compression: LZ4F_createCompressionContext", corruptInput: false)
        // A zero return with a nil context would be a broken liblz4, not a runtime condition.
        self.context = context!
    }

    deinit { LZ4F_freeCompressionContext(context) }

    /// Compresses `input`, pushing the output buffer to `next` whenever the next slice might not fit.
    public func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        try beginIfNeeded(next: next)
        guard var source = input.baseAddress else { return }
        var remaining = input.count
        while remaining > 0 {
            let slice = min(remaining, chunkSize)
            // The bound includes up to one block lz4 still holds internally, so it is checked per
            // call rather than once: output accumulates across calls until the next might overflow.
            if output.freeCount < LZ4F_compressBound(slice, &preferences) {
                try output.flush(to: next)
            }
            let written = try lz4Check(LZ4F_compressUpdate(context, output.freeStart, output.freeCount, source, slice, nil),
                                       "lz4 compression: LZ4F_compressUpdate", corruptInput: false)
            output.commit(written)
            source += slice
            remaining -= slice
        }
    }

    /// Writes the last block, end mark and content checksum, then pushes everything to `next`.
    public func finish(next: ByteSink) throws {
        try beginIfNeeded(next: next)
        if output.freeCount < LZ4F_compressBound(0, &preferences) {
            try output.flush(to: next)
        }
        let written = try lz4Check(LZ4F_compressEnd(context, output.freeStart, output.freeCount, nil),
                                   "lz4 compression: LZ4F_compressEnd", corruptInput: false)
        output.commit(written)
        state = .finished
        try output.flush(to: next)
    }

    /// Drops any unfinished frame; the next `process` or `finish` starts a new one.
    public func reset() throws {
        output.discard()
        state = .idle
    }

    private func beginIfNeeded(next: ByteSink) throws {
        switch state {
        case .started: return
        case .finished: throw StreamState.usedAfterFinish("lz4 compression")
        case .idle: break
        }
        if output.freeCount < Int(LZ4F_HEADER_SIZE_MAX) {
            try output.flush(to: next)
        }
        let written = try lz4Check(LZ4F_compressBegin(context, output.freeStart, output.freeCount, &preferences),
                                   "lz4 compression: LZ4F_compressBegin", corruptInput: false)
        output.commit(written)
        state = .started
    }
}

/// Decompresses exactly one lz4 frame.
///
/// `finish` throws when the frame is incomplete (a truncated file); any byte after the end of the
/// frame throws as well, because pgkeep writes one frame per file and anything more means the
/// file is not what we stored. Corruption is reported by liblz4 (malformed blocks, or the content
/// checksum at the end of the frame).
///
/// Output is streamed: bytes decoded before a corruption is detected have already been pushed
/// downstream, so a caller must treat everything it received as invalid when any call throws
/// (restore writes to a temporary name and renames only after `finish` succeeds).
public final class LZ4DecompressFilter: Filter {
    private let context: OpaquePointer
    private var output: PendingOutput
    private var state = StreamState.idle
    private var frameComplete = false
    private var options = LZ4F_decompressOptions_t()

    /// Creates a decompressor whose output buffer holds `bufferSize` bytes (any size works; larger
    /// means fewer, bigger writes downstream).
    ///
    /// `frameChecksum: .skip` leaves the frame's XXH32 content checksum unchecked, which makes
    /// decoding several times faster (liblz4's XXH32 runs at about the speed of SHA-256 here, the
    /// block decoder at several GB/s). Only for a caller that checks every decoded byte itself;
    /// malformed blocks are still errors.
    init(bufferSize: Int, frameChecksum: FrameChecksum = .verify) throws(PGKeepError) {
        precondition(bufferSize > 0, "LZ4DecompressFilter bufferSize must be positive")
        output = PendingOutput(capacity: bufferSize)
        // skipChecksums: liblz4 >= 1.9.4 (Debian 12).
        options.skipChecksums = frameChecksum == .skip ? 1 : 0
        var context: OpaquePointer?
        try lz4Check(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION)),
                     "lz4 decompression: LZ4F_createDecompressionContext", corruptInput: false)
        // A zero return with a nil context would be a broken liblz4, not a runtime condition.
        self.context = context!
    }

    deinit { LZ4F_freeDecompressionContext(context) }

    /// Decodes `input`, pushing the output buffer to `next` each time it fills.
    public func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        if state == .finished { throw StreamState.usedAfterFinish("lz4 decompression") }
        guard var source = input.baseAddress, input.count > 0 else { return }
        state = .started
        if frameComplete { throw trailingData(input.count) }
        var remaining = input.count
        while true {
            if output.isFull { try output.flush(to: next) }
            var produced = output.freeCount
            var consumed = remaining
            let expected = try lz4Check(LZ4F_decompress(context, output.freeStart, &produced, source, &consumed, &options),
                                        "lz4 decompression: LZ4F_decompress", corruptInput: true)
            output.commit(produced)
            source += consumed
            remaining -= consumed
            if expected == 0 {
                // 0 means the end mark and content checksum were read (and verified unless skipped).
                frameComplete = true
                if remaining > 0 { throw trailingData(remaining) }
                return
            }
            // A full buffer may mean liblz4 holds more decoded bytes: flush and call again even
            // when all input is consumed. Otherwise everything decodable so far has been written.
            if output.isFull { continue }
            if remaining == 0 { return }
            // Neither full nor finished yet input left: liblz4 must have made progress, else we
            // would loop forever on its behalf.
            if consumed == 0 && produced == 0 {
                throw PGKeepError(.compression, "lz4 decompression: LZ4F_decompress made no progress with \(remaining) bytes of input left",
                                  hint: "this is a defect in pgkeep or liblz4; report it with both versions")
            }
        }
    }

    /// Pushes the remaining output, then checks that the frame was complete.
    public func finish(next: ByteSink) throws {
        if state == .finished { throw StreamState.usedAfterFinish("lz4 decompression") }
        try output.flush(to: next)
        state = .finished
        guard frameComplete else {
            throw PGKeepError(.compression, "lz4 decompression: the compressed stream is truncated: it ended before the end of the lz4 frame",
                              hint: StreamState.truncatedHint)
        }
    }

    /// Abandons any frame in progress; ready for a new stream with the same context and buffer.
    public func reset() throws {
        // Also required after a decoding error, which leaves the context in an undefined state.
        LZ4F_resetDecompressionContext(context)
        output.discard()
        state = .idle
        frameComplete = false
    }

    private func trailingData(_ count: Int) -> PGKeepError {
        PGKeepError(.compression, "lz4 decompression: \(count) unexpected bytes after the end of the lz4 frame",
                    hint: StreamState.corruptHint)
    }
}

/// The one place LZ4F return codes are checked: every LZ4F call returns either a size or an
/// error code that `LZ4F_isError` recognises. Returns the size.
///
/// `corruptInput` selects the hint: a decoder error means the stored bytes are bad, an encoder
/// error can only be a defect (or exhausted memory).
@discardableResult
private func lz4Check(_ code: Int, _ operation: String, corruptInput: Bool) throws(PGKeepError) -> Int {
    guard LZ4F_isError(code) != 0 else { return code }
    let reason = String(cString: LZ4F_getErrorName(code))
    throw PGKeepError(.compression, "\(operation) failed: \(reason)",
                      hint: corruptInput ? StreamState.corruptHint : StreamState.codecDefectHint)
}
