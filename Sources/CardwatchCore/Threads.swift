import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Starts a thread that carries `name` where the system's tools see it (`top -H`, `perf`,
/// `/proc/<pid>/task/<tid>/comm`). Foundation on Linux keeps a name set before `start()`
/// on the `Thread` object only, and one set from the new thread reaches the system only
/// when the spawning thread has recorded the new one's handle by then (a race; the test
/// caught it): so the thread names itself through `/proc/thread-self/comm` (what
/// `pthread_setname_np` does on Linux; Swift's Glibc module does not declare it), which takes
/// at most 15 bytes (a longer name is cut here, at a character boundary).
public func startThread(named name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
    var cut = Substring(name)
    while cut.utf8.count > 15 { cut.removeLast() }
    let short = String(cut)
    let thread = Thread {
        #if os(Linux)
            let fd = open("/proc/thread-self/comm", O_WRONLY)
            if fd >= 0 {
                _ = short.withCString { write(fd, $0, strlen($0)) }
                close(fd)
            }
        #else
            Thread.current.name = short
        #endif
        body()
    }
    thread.name = name
    if let stackSize { thread.stackSize = stackSize }
    thread.start()
}
