/// CRC-32C (Castagnoli), the checksum PostgreSQL uses for pg_control and WAL records.
///
/// Parameters (`src/include/port/pg_crc32c.h`, `src/port/pg_crc32c_sb8.c`): reflected polynomial
/// `0x82F63B78`, initial value `0xFFFFFFFF` (`INIT_CRC32C`), final XOR `0xFFFFFFFF` (`FIN_CRC32C`).
/// This is the standard CRC-32C; its check value for the ASCII bytes "123456789" is `0xE3069283`.
///
/// Software slicing-by-8, like PostgreSQL's fallback `pg_comp_crc32c_sb8`: eight 256-entry tables
/// let the loop consume 8 bytes per step. The tables are built once, on first use.
///
/// Use `checksum(_:)` for one buffer, or `update(_:)` repeatedly and read `value` for a stream.
public struct CRC32C: Sendable {
    /// The running register, before the final XOR.
    private var state: UInt32 = 0xFFFF_FFFF

    /// A CRC over zero bytes so far.
    public init() {}

    /// The CRC-32C of everything passed to `update` so far.
    public var value: UInt32 { state ^ 0xFFFF_FFFF }

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// The CRC-32C of a byte array.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Feeds `bytes` into the CRC.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        var crc = state
        Self.tables.withUnsafeBufferPointer { table in
            while remaining >= 8 {
                // The reflected CRC register lines up with little-endian words of the input.
                let one = UInt32(littleEndian: pointer.loadUnaligned(as: UInt32.self)) ^ crc
                let two = UInt32(littleEndian: pointer.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                crc = table[7 &* 256 &+ Int(one & 0xFF)]
                    ^ table[6 &* 256 &+ Int((one >> 8) & 0xFF)]
                    ^ table[5 &* 256 &+ Int((one >> 16) & 0xFF)]
                    ^ table[4 &* 256 &+ Int(one >> 24)]
                    ^ table[3 &* 256 &+ Int(two & 0xFF)]
                    ^ table[2 &* 256 &+ Int((two >> 8) & 0xFF)]
                    ^ table[1 &* 256 &+ Int((two >> 16) & 0xFF)]
                    ^ table[Int(two >> 24)]
                pointer += 8
                remaining -= 8
            }
            while remaining > 0 {
                let byte = pointer.load(as: UInt8.self)
                crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                pointer += 1
                remaining -= 1
            }
        }
        state = crc
    }

    /// Eight 256-entry tables, flattened: entry `k*256 + i` is the CRC contribution of byte `i`
    /// followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var crc = UInt32(i)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            table[i] = crc
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = table[(k - 1) * 256 + i]
                table[k * 256 + i] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        return table
    }()
}
