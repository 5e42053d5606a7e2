import Glibc
import Overlay

/// Entry names of a layer tarball, as bytes: how GNU tar reads them (a leading "./", repeated or trailing
/// slashes, "." components are nothing) and which ones no layer may hold (absolute, "..", overlong names).
enum TarNames {
    /// The path an entry name stands for inside the layer; the root itself for "." or "./".
    static func path(_ bytes: [UInt8]) throws(TarRefusal) -> LayerPath {
        if bytes.first == 0x2F { throw TarRefusal("an absolute path would land outside the layer directory") }
        var names: [Name] = []
        for part in bytes.split(separator: 0x2F, omittingEmptySubsequences: true) where part != [0x2E] {
            if part.elementsEqual([0x2E, 0x2E]) { throw TarRefusal("a \"..\" component would land outside the layer directory") }
            do {
                names.append(try Name(Array(part)))
            } catch {
                throw TarRefusal(error == .fileNameTooLong ? "a name longer than 255 bytes" : "a name no directory can hold")
            }
        }
        return LayerPath(names)
    }

    /// A name libarchive hands over, as its bytes.
    static func bytes(_ text: UnsafePointer<CChar>?) -> [UInt8] {
        guard let text else { return [] }
        return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(text), count: strlen(text)))
    }
}

/// Why an entry cannot be unpacked; the entry's name is added where it is reported.
struct TarRefusal: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
