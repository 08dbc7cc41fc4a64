import CZstd

// Zstandard frames as the `zstd` command line tool reads and writes them, without the frame's
// content checksum: every stored object is covered twice by SHA-256 already (stored bytes and
// original bytes, both checked on restore), and the XXH64 on top cost 10-15% of zstd-1's CPU
// (`zstd -1` vs `zstd -1 --no-check` on a 466 MB table file: 1.12-1.19 s vs 0.96-1.02 s). Frames of
// earlier versions carry one; the decoder still checks it.

/// Compresses a stream into a single zstd frame with `ZSTD_compressStream2`.
///
/// The `ZSTD_CCtx` and the output buffer are allocated once. `reset()` uses
/// `ZSTD_reset_session_only`, which drops any frame in progress but keeps the parameters (level,
/// no checksum) and the context's internal tables, so the next stream pays no set-up cost.
/// An empty input still produces a complete frame (header, one empty block).
public final class ZstdCompressFilter: Filter {
    private let context: OpaquePointer
    private var output: PendingOutput
    private var state = StreamState.idle

    /// Creates a compressor.
    /// - Parameters:
    ///   - level: zstd level, `CompressionType.zst.validLevels` (1...19).
    ///   - bufferSize: the output buffer, pushed downstream each time it fills
    ///     (`ZSTD_CStreamOutSize()`, about 128 KiB, is a good size; any positive size works).
    ///   - contentChecksum: add zstd's content checksum, as pgkeep before 0.4 did (tests use it to
    ///     write such frames; the repository does not need it, see the top of this file).
    init(level: Int, bufferSize: Int, contentChecksum: Bool = false) throws(PGKeepError) {
        guard CompressionType.zst.validLevels.contains(level) else {
            throw CompressionType.zst.levelError(level)
        }
        precondition(bufferSize > 0, "ZstdCompressFilter bufferSize must be positive")
        guard let context = ZSTD_createCCtx() else {
            throw PGKeepError(.compression, "zstd compression: ZSTD_createCCtx could not allocate a compression context",
                              hint: "the system is out of memory; reduce process-max or the compression level, then run the command again")
        }
        self.context = context
        output = PendingOutput(capacity: bufferSize)
        // From here on `self` is fully initialised, so deinit frees the context if a call throws.
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)),
                      "zstd compression: setting the compression level", corruptInput: false)
        try zstdCheck(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, contentChecksum ? 1 : 0),
                      "zstd compression: setting the content checksum flag", corruptInput: false)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `input`. zstd buffers input internally and emits output in bursts; the output
    /// buffer is pushed to `next` only when it is full.
    public func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        if state == .finished { throw StreamState.usedAfterFinish("zstd compression") }
        state = .started
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while source.pos < source.size {
            if output.isFull { try output.flush(to: next) }
            var target = ZSTD_outBuffer(dst: output.freeStart, size: output.freeCount, pos: 0)
            try zstdCheck(ZSTD_compressStream2(context, &target, &source, ZSTD_e_continue),
                          "zstd compression: ZSTD_compressStream2", corruptInput: false)
            output.commit(target.pos)
        }
    }

    /// Ends the frame (last block and checksum) and pushes everything to `next`.
    public func finish(next: ByteSink) throws {
        try processLast(UnsafeRawBufferPointer(start: nil, count: 0), next: next)
    }

    /// Compresses the rest of the stream and ends the frame. Given a whole block before anything
    /// else, libzstd compresses it in one pass straight into the output buffer (when that has
    /// `ZSTD_compressBound` room), with parameters for its known size and that size in the frame
    /// header: on 128 KiB blocks of a mixed table ~590 MB/s, against ~500 MB/s for the same
    /// block through `ZSTD_e_continue` first (input copied into the context's window buffer).
    public func processLast(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        if state == .finished { throw StreamState.usedAfterFinish("zstd compression") }
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var pending = 0
        repeat {
            if output.isFull { try output.flush(to: next) }
            var target = ZSTD_outBuffer(dst: output.freeStart, size: output.freeCount, pos: 0)
            // With ZSTD_e_end the return value is what is still to be compressed or flushed.
            pending = try zstdCheck(ZSTD_compressStream2(context, &target, &source, ZSTD_e_end),
                                    "zstd compression: ZSTD_compressStream2 (end of frame)", corruptInput: false)
            output.commit(target.pos)
        } while pending != 0
        state = .finished
        try output.flush(to: next)
    }

    /// Drops any frame in progress, keeping level, checksum setting, context and buffer.
    public func reset() throws {
        try zstdCheck(ZSTD_CCtx_reset(context, ZSTD_reset_session_only),
                      "zstd compression: ZSTD_CCtx_reset", corruptInput: false)
        output.discard()
        state = .idle
    }
}

/// Decompresses exactly one zstd frame with `ZSTD_decompressStream`.
///
/// `finish` throws when the frame is incomplete (a truncated file); any byte after the end of the
/// frame throws as well, because pgkeep writes one frame per file and anything more means the file
/// is not what we stored. Corruption is reported by libzstd (malformed blocks, or the content
/// checksum at the end of the frame).
///
/// Output is streamed: bytes decoded before a corruption is detected have already been pushed
/// downstream, so a caller must treat everything it received as invalid when any call throws
/// (restore writes to a temporary name and renames only after `finish` succeeds).
///
/// The decoder keeps libzstd's default window limit (128 MiB), which bounds the memory a hostile
/// or damaged header can make it allocate; every level pgkeep writes stays below it.
public final class ZstdDecompressFilter: Filter {
    private let context: OpaquePointer
    private var output: PendingOutput
    private var state = StreamState.idle
    private var frameComplete = false

    /// Creates a decompressor whose output buffer holds `bufferSize` bytes (any size works;
    /// `ZSTD_DStreamOutSize()`, 128 KiB, lets libzstd write whole blocks without an extra copy).
    init(bufferSize: Int) throws(PGKeepError) {
        precondition(bufferSize > 0, "ZstdDecompressFilter bufferSize must be positive")
        guard let context = ZSTD_createDCtx() else {
            throw PGKeepError(.compression, "zstd decompression: ZSTD_createDCtx could not allocate a decompression context",
                              hint: "the system is out of memory; reduce process-max, then run the command again")
        }
        self.context = context
        output = PendingOutput(capacity: bufferSize)
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decodes `input`, pushing the output buffer to `next` each time it fills.
    public func process(_ input: UnsafeRawBufferPointer, next: ByteSink) throws {
        if state == .finished { throw StreamState.usedAfterFinish("zstd decompression") }
        guard input.count > 0 else { return }
        state = .started
        if frameComplete { throw trailingData(input.count) }
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            if output.isFull { try output.flush(to: next) }
            var target = ZSTD_outBuffer(dst: output.freeStart, size: output.freeCount, pos: 0)
            let consumedBefore = source.pos
            let hint = try zstdCheck(ZSTD_decompressStream(context, &target, &source),
                                     "zstd decompression: ZSTD_decompressStream", corruptInput: true)
            output.commit(target.pos)
            if hint == 0 {
                // 0 means the frame is fully decoded, its checksum verified and all output
                // flushed; libzstd stops there, so any input left belongs to something else.
                frameComplete = true
                if source.pos < source.size { throw trailingData(source.size - source.pos) }
                return
            }
            // A full buffer may mean libzstd holds more decoded bytes: flush and call again even
            // when all input is consumed. Otherwise it has consumed all input it could.
            if output.isFull { continue }
            if source.pos == source.size { return }
            // Neither full nor finished yet input left: libzstd must have made progress, else we
            // would loop forever on its behalf.
            if target.pos == 0 && source.pos == consumedBefore {
                throw PGKeepError(.compression, "zstd decompression: ZSTD_decompressStream made no progress with \(source.size - source.pos) bytes of input left",
                                  hint: "this is a defect in pgkeep or libzstd; report it with both versions")
            }
        }
    }

    /// Pushes the remaining output, then checks that the frame was complete.
    public func finish(next: ByteSink) throws {
        if state == .finished { throw StreamState.usedAfterFinish("zstd decompression") }
        try output.flush(to: next)
        state = .finished
        guard frameComplete else {
            throw PGKeepError(.compression, "zstd decompression: the compressed stream is truncated: it ended before the end of the zstd frame",
                              hint: StreamState.truncatedHint)
        }
    }

    /// Abandons any frame in progress (also needed after a decoding error); keeps the context,
    /// its window buffers and the output buffer.
    public func reset() throws {
        try zstdCheck(ZSTD_DCtx_reset(context, ZSTD_reset_session_only),
                      "zstd decompression: ZSTD_DCtx_reset", corruptInput: false)
        output.discard()
        state = .idle
        frameComplete = false
    }

    private func trailingData(_ count: Int) -> PGKeepError {
        PGKeepError(.compression, "zstd decompression: \(count) unexpected bytes after the end of the zstd frame",
                    hint: StreamState.corruptHint)
    }
}

/// The one place zstd return codes are checked: every call returns either a size (or hint) or an
/// error code that `ZSTD_isError` recognises. Returns the size.
///
/// `corruptInput` selects the hint: a decoder error means the stored bytes are bad, an encoder
/// error can only be a defect (or exhausted memory).
@discardableResult
private func zstdCheck(_ code: Int, _ operation: String, corruptInput: Bool) throws(PGKeepError) -> Int {
    guard ZSTD_isError(code) != 0 else { return code }
    let reason = String(cString: ZSTD_getErrorName(code))
    throw PGKeepError(.compression, "\(operation) failed: \(reason)",
                      hint: corruptInput ? StreamState.corruptHint : StreamState.codecDefectHint)
}
