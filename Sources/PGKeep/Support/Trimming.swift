extension StringProtocol {
    /// The text without leading and trailing characters from `set` (a small stand-in for
    /// Foundation's, which the modules without Foundation lack): `"4242\n"` gives `"4242"`.
    package func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
