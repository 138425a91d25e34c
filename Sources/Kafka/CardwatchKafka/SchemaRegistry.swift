#if Kafka
    public import CardwatchCore
    import Foundation
    #if canImport(FoundationNetworking)
        import FoundationNetworking
    #endif

    /// A Confluent-compatible schema registry (Confluent Schema Registry, Karapace, Apicurio's
    /// compatibility API), asked for writer schemas by id: `GET /schemas/ids/{id}`, answered
    /// `{"schema": "<the schema's JSON text>"}`. `https://USER:PASSWORD@HOST/` sends basic
    /// authentication (Confluent Cloud's API keys); the URL is never printed with them.
    ///
    /// Called from the runtime's thread, which blocks for the answer: once per schema id, as
    /// the decoder caches what it gets. Foundation's URLSession is the client (in the toolchain,
    /// no further package).
    public struct SchemaRegistry: WriterSchemaSource {
        let base: URL
        let authorization: String?
        public let timeout: Double
        /// The largest answer read (a schema is a few kilobytes).
        static let maxAnswerBytes = AvroSchema.maxTextBytes + 4096

        public init(url: String, timeout: Double = 5) throws {
            guard var parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(),
                scheme == "http" || scheme == "https", parts.host?.isEmpty == false
            else {
                throw KafkaError("--schema-registry \(url.redactingPassword): not an http:// or https:// URL")
            }
            if let user = parts.user {
                let pair = "\(user.removingPercentEncoding ?? user):\(parts.password?.removingPercentEncoding ?? "")"
                authorization = "Basic " + Data(pair.utf8).base64EncodedString()
            } else {
                authorization = nil
            }
            parts.user = nil
            parts.password = nil
            if !parts.path.hasSuffix("/") { parts.path += "/" }
            base = parts.url!
            self.timeout = timeout
        }

        public var description: String { base.absoluteString }

        public func schemaText(id: Int32) throws -> String {
            var request = URLRequest(url: base.appendingPathComponent("schemas/ids/\(id)"), timeoutInterval: timeout)
            request.setValue("application/vnd.schemaregistry.v1+json, application/json", forHTTPHeaderField: "Accept")
            if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
            let answer = Locked<Result<(Data, Int), any Error>?>(nil)
            let done = DispatchSemaphore(value: 0)
            let task = URLSession.shared.dataTask(with: request) { data, response, error in
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                answer.withLock { $0 = error.map { .failure($0) } ?? .success((data ?? Data(), status)) }
                done.signal()
            }
            task.resume()
            if done.wait(timeout: .now() + timeout + 1) == .timedOut {
                task.cancel()
                throw SchemaLookupFailure(unknown: false, "the schema registry \(description) did not answer in \(timeout) s")
            }
            let (data, status): (Data, Int)
            switch answer.withLock({ $0 })! {
            case .failure(let e):
                throw SchemaLookupFailure(unknown: false, "the schema registry \(description): \(e.localizedDescription)")
            case .success(let got): (data, status) = got
            }
            // 404: no such schema (Confluent's error 40403). Anything else but 200 may pass.
            if status == 404 {
                throw SchemaLookupFailure(unknown: true, "schema id \(id) is not in the registry \(description)")
            }
            guard status == 200 else {
                throw SchemaLookupFailure(
                    unknown: false, "the schema registry \(description) answered \(status) for schema id \(id)")
            }
            guard data.count <= Self.maxAnswerBytes,
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let text = object["schema"] as? String
            else {
                throw SchemaLookupFailure(
                    unknown: true, "the schema registry's answer for schema id \(id) has no \"schema\" string")
            }
            if let type = object["schemaType"] as? String, type.uppercased() != "AVRO" {
                throw SchemaLookupFailure(unknown: true, "schema id \(id) is a \(type) schema, not Avro")
            }
            return text
        }
    }

    extension String {
        /// The URL with any password replaced by `***`, for messages.
        var redactingPassword: String {
            guard var parts = URLComponents(string: self), parts.password != nil else { return self }
            parts.password = "***"
            return parts.string ?? "(a URL)"
        }
    }
#endif
