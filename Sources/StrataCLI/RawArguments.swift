import Glibc

/// Command-line arguments as the bytes the shell passed. Swift decodes argv as UTF-8 and repairs what is not
/// (a Latin-1 byte becomes U+FFFD), which would make names like `lat\xe9n` impossible to ask about; a path
/// argument is therefore taken back from the raw argv entry it was decoded from.
enum RawArguments {
    static func bytes(of argument: String) -> [UInt8] {
        guard argument.unicodeScalars.contains("\u{FFFD}") else { return Array(argument.utf8) }
        for index in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[index] else { continue }
            let bytes = Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(raw), count: strlen(raw)))
            if String(decoding: bytes, as: UTF8.self) == argument { return bytes }
            // The option list may be glued to its flag (-o...), or the path may follow "--".
            if bytes.count > 2, bytes.starts(with: [0x2D, 0x6F]), String(decoding: bytes.dropFirst(2), as: UTF8.self) == argument {
                return Array(bytes.dropFirst(2))
            }
        }
        return Array(argument.utf8)
    }
}
