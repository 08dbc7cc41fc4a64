import PGKeepCore

/// The structured payload of hello, request, result and error frames (protocol.md §3): a sequence
/// of fields, each a tag (1-255), a kind and a value. Tags are numbered per message; a reader
/// ignores tags it does not know (a later minor version may add fields) but refuses a tag given
/// twice, a kind it does not know, or a value that runs past the payload.
public struct Fields: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        /// Kind 1: an unsigned integer, 8 bytes big-endian.
        case unsigned(UInt64)
        /// Kind 2: bytes (UTF-8 text for strings), a 4-byte big-endian length, then the bytes.
        case bytes([UInt8])
        /// Kind 3: a boolean, one byte 0 or 1.
        case bool(Bool)
    }

    public private(set) var values: [UInt8: Value] = [:]

    public init() {}

    public mutating func set(_ tag: UInt8, _ value: Value) {
        precondition(tag != 0, "field tag 0 is reserved")
        values[tag] = value
    }

    public mutating func set(_ tag: UInt8, _ number: UInt64) { set(tag, .unsigned(number)) }
    public mutating func set(_ tag: UInt8, _ text: String) { set(tag, .bytes(Array(text.utf8))) }
    public mutating func set(_ tag: UInt8, _ flag: Bool) { set(tag, .bool(flag)) }

    /// The payload bytes, fields in ascending tag order.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        for tag in values.keys.sorted() {
            bytes.append(tag)
            switch values[tag]! {
            case .unsigned(let number):
                bytes.append(1)
                Wire.append(number, to: &bytes)
            case .bytes(let content):
                bytes.append(2)
                Wire.append(UInt32(content.count), to: &bytes)
                bytes.append(contentsOf: content)
            case .bool(let flag):
                bytes.append(3)
                bytes.append(flag ? 1 : 0)
            }
        }
        return bytes
    }

    /// Parses a payload; `what` and `peer` name it in errors ("the error frame from agent db1").
    public init(decoding payload: [UInt8], what: String, peer: String) throws(PGKeepError) {
        func refuse(_ problem: String) -> PGKeepError {
            PGKeepError(.protocolInvalid, "\(what) from \(peer) is malformed: \(problem)",
                        hint: "the peer is not a pgkeep agent or client of a compatible version; the connection is closed")
        }
        var i = 0
        while i < payload.count {
            guard payload.count - i >= 2 else { throw refuse("a field header is cut short at byte \(i)") }
            let tag = payload[i], kind = payload[i + 1]
            guard tag != 0 else { throw refuse("field tag 0 at byte \(i)") }
            guard values[tag] == nil else { throw refuse("field \(tag) is given twice") }
            i += 2
            let value: Value
            switch kind {
            case 1:
                guard payload.count - i >= 8 else { throw refuse("field \(tag) is cut short") }
                value = .unsigned(Wire.uint64(payload[i..<(i + 8)]))
                i += 8
            case 2:
                guard payload.count - i >= 4 else { throw refuse("field \(tag) is cut short") }
                let length = Int(Wire.uint32(payload[i..<(i + 4)]))
                i += 4
                guard payload.count - i >= length else { throw refuse("field \(tag) claims \(length) bytes, \(payload.count - i) follow") }
                value = .bytes(Array(payload[i..<(i + length)]))
                i += length
            case 3:
                guard payload.count - i >= 1 else { throw refuse("field \(tag) is cut short") }
                guard payload[i] <= 1 else { throw refuse("field \(tag) is a boolean of value \(payload[i])") }
                value = .bool(payload[i] == 1)
                i += 1
            default:
                throw refuse("field \(tag) has unknown kind \(kind)")
            }
            values[tag] = value
        }
    }

    public func unsigned(_ tag: UInt8) -> UInt64? {
        if case .unsigned(let number)? = values[tag] { return number }
        return nil
    }

    /// The field as UTF-8 text; nil when absent, not bytes, or not valid UTF-8.
    public func string(_ tag: UInt8) -> String? {
        guard case .bytes(let content)? = values[tag] else { return nil }
        return String(validating: content, as: UTF8.self)
    }

    public func bool(_ tag: UInt8) -> Bool? {
        if case .bool(let flag)? = values[tag] { return flag }
        return nil
    }
}
