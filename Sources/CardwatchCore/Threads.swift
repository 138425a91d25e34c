import Foundation

/// Starts a thread that carries `name` where the system's tools see it (`top -H`, `perf`,
/// `/proc/<pid>/task/<tid>/comm`). Foundation on Linux keeps a name set before `start()`
/// on the `Thread` object only; set from the thread itself it reaches pthread, which takes
/// at most 15 bytes (a longer name is cut here, at a character boundary).
public func startThread(named name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
    var cut = Substring(name)
    while cut.utf8.count > 15 { cut.removeLast() }
    let short = String(cut)
    let thread = Thread {
        Thread.current.name = short
        body()
    }
    thread.name = name
    if let stackSize { thread.stackSize = stackSize }
    thread.start()
}
