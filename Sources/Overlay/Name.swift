import CLinux
import SystemPackage

/// One directory entry's name, as the kernel gives it: bytes, any but `/` and NUL, never "." or "..", at most
/// NAME_MAX long. Names are never decoded as text on the way through the engine; they are only escaped for
/// messages.
public struct Name: Hashable, Sendable, Comparable {
    public let bytes: [UInt8]

    /// Refuses what no directory can hold: empty, ".", "..", a `/` or NUL, or longer than NAME_MAX.
    public init(_ bytes: [UInt8]) throws(Errno) {
        guard Self.isValid(bytes) else {
            throw bytes.count > Int(CLinux_NAME_MAX) ? .fileNameTooLong : .invalidArgument
        }
        self.bytes = bytes
    }

    /// For names the engine itself makes (markers, staging names), which are valid by construction.
    init(trusted bytes: [UInt8]) { self.bytes = bytes }

    init(trusted text: StaticString) {
        bytes = text.withUTF8Buffer { Array($0) }
    }

    public static func isValid(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty, bytes.count <= Int(CLinux_NAME_MAX), bytes != [0x2E], bytes != [0x2E, 0x2E] else { return false }
        return !bytes.contains { $0 == 0x2F || $0 == 0 }
    }

    public var count: Int { bytes.count }

    /// The bytes in one piece: an array's own hashing feeds them to the hasher one at a time, which showed in
    /// profiles of every lookup.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(bytes.count)
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    func hasPrefix(_ prefix: [UInt8]) -> Bool { bytes.starts(with: prefix) }

    public static func < (lhs: Name, rhs: Name) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

    /// The name as a terminal shows it: printable UTF-8 as is, other bytes as `\ooo` octal escapes and
    /// a backslash doubled (GNU ls's `--quoting-style=escape`).
    public var escaped: String { Escaping.escape(bytes) }

    /// The name as text when it is valid UTF-8 (nil otherwise), for JSON and other exact outputs.
    public var text: String? { Escaping.exactText(bytes) }

    /// Calls `body` with the name as a NUL-terminated C string.
    func withCString<T, E: Error>(_ body: (UnsafePointer<CChar>) throws(E) -> T) throws(E) -> T {
        try Escaping.withCString(bytes, body)
    }
}

/// Turning bytes into text for people (escaped) and machines (exact, or nothing).
public enum Escaping {
    public static func escape(_ bytes: [UInt8]) -> String {
        var out = ""
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x5C {
                out += "\\\\"
                index += 1
            } else if byte >= 0x20, byte < 0x7F {
                out.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
            } else if byte >= 0x80, let (scalar, length) = decodeScalar(bytes, at: index), scalar.properties.isPrintable {
                out.unicodeScalars.append(scalar)
                index += length
            } else {
                out += "\\" + octal(byte)
                index += 1
            }
        }
        return out
    }

    public static func exactText(_ bytes: [UInt8]) -> String? {
        String(validating: bytes, as: UTF8.self)
    }

    /// Calls `body` with bytes as a NUL-terminated C string.
    public static func withCString<T, E: Error>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws(E) -> T) throws(E) -> T {
        let terminated = bytes + [0]
        return try terminated.withUnsafeBufferPointer { buffer throws(E) -> T in
            // The buffer holds at least the terminator, so it has an address; "" stands in to avoid a trap.
            let base = buffer.baseAddress.map(UnsafeRawPointer.init) ?? UnsafeRawPointer(("" as StaticString).utf8Start)
            return try body(base.assumingMemoryBound(to: CChar.self))
        }
    }

    private static func octal(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 8)
        return String(repeating: "0", count: 3 - digits.count) + digits
    }

    private static func decodeScalar(_ bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        let lead = bytes[index]
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0
        guard length > 0, index + length <= bytes.count else { return nil }
        guard let text = String(validating: bytes[index..<index + length], as: UTF8.self),
              let scalar = text.unicodeScalars.first, text.unicodeScalars.count == 1 else { return nil }
        return (scalar, length)
    }
}

extension Unicode.Scalar.Properties {
    fileprivate var isPrintable: Bool {
        switch generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator: false
        default: true
        }
    }
}
