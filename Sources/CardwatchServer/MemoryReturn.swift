import Hummingbird
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Gives the memory of a large request back to the system when it is done. glibc keeps
/// freed small blocks in its arenas for reuse: after one 1 MB body of 330,000 tiny records
/// the process held on to gigabytes it no longer used. `malloc_trim` returns the free pages;
/// it runs off the request's path, one at a time.
enum MemoryReturn {
    /// Bodies from this size on are followed by a trim.
    static let largeBody = 256 * 1024
    private static let trimming = Atomic<Bool>(false)

    /// Returns free memory to the system, unless a trim is already under way.
    static func trimSoon() {
        guard let trim = mallocTrim, !trimming.exchange(true, ordering: .acquiring) else { return }
        Task.detached(priority: .background) {
            // After the answer is written and the request's buffers are gone.
            try? await Task.sleep(for: .milliseconds(500))
            _ = trim(0)
            trimming.store(false, ordering: .releasing)
        }
    }

    /// glibc's `malloc_trim` (not in Swift's Glibc module), nil on other C libraries.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
            return nil
        #endif
    }()
}

/// After a request whose body was large (or of unknown length), once it is answered.
struct MemoryReturnMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard request.method == .post else { return try await next(request, context) }
        let length = request.headers[.contentLength].flatMap { Int($0) }
        defer { if length.map({ $0 >= MemoryReturn.largeBody }) ?? true { MemoryReturn.trimSoon() } }
        return try await next(request, context)
    }
}
