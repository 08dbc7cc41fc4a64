/// Values numbered in the order they are first seen, so that compact per-file records (the
/// listing, the prior manifest) store a `UInt16` instead of repeating an owner name, a listing
/// root or a backup label for each of 100,000 files.
package struct InternTable<Value: Hashable> {
    private(set) var values: [Value]
    private var numbers: [Value: UInt16] = [:]
    /// Names the values in the error when there are more than `UInt16` can number.
    private let what: String

    /// `preset` values take the first numbers (an owner table starts with nil, "no name", at 0).
    package init(of what: String, preset: [Value] = []) {
        self.what = what
        values = []
        for value in preset { _ = try? number(of: value) }
    }

    package mutating func number(of value: Value) throws -> UInt16 {
        if let number = numbers[value] { return number }
        guard let number = UInt16(exactly: values.count) else {
            throw PGKeepError(.internal, "more than \(UInt16.max) \(what)")
        }
        values.append(value)
        numbers[value] = number
        return number
    }

    package subscript(number: UInt16) -> Value { values[Int(number)] }
}
