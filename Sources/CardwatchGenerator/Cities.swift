public import CardwatchCore

/// A real city: where cardholders live, merchants trade and travellers go.
public struct City: Sendable {
    public var name: String
    public var country: String
    public var location: GeoPoint
    /// Standard-time offset from UTC; daylight saving is ignored.
    public var utcOffsetMinutes: Int
    /// Relative size (metro population, millions): how many cardholders live there and how many merchants it has.
    public var weight: Double
}

extension City {
    init(_ name: String, _ country: String, _ lat: Double, _ lon: Double, _ utcOffsetHours: Double, _ weight: Double) {
        self.init(
            name: name, country: country, location: GeoPoint(latitude: lat, longitude: lon),
            utcOffsetMinutes: Int(utcOffsetHours * 60), weight: weight)
    }

    /// Cardholders live in the United States (cards are US-issued and bill in USD);
    /// the rest of the world is where they travel and where fraud comes from.
    public static let catalog: [City] = [
        City("New York", "US", 40.7128, -74.0060, -5, 19.5),
        City("Los Angeles", "US", 34.0522, -118.2437, -8, 12.8),
        City("Chicago", "US", 41.8781, -87.6298, -6, 9.4),
        City("Dallas", "US", 32.7767, -96.7970, -6, 7.6),
        City("Houston", "US", 29.7604, -95.3698, -6, 7.1),
        City("Washington", "US", 38.9072, -77.0369, -5, 6.3),
        City("Philadelphia", "US", 39.9526, -75.1652, -5, 6.2),
        City("Miami", "US", 25.7617, -80.1918, -5, 6.1),
        City("Atlanta", "US", 33.7490, -84.3880, -5, 6.1),
        City("Boston", "US", 42.3601, -71.0589, -5, 4.9),
        City("Phoenix", "US", 33.4484, -112.0740, -7, 4.9),
        City("San Francisco", "US", 37.7749, -122.4194, -8, 4.7),
        City("Riverside", "US", 33.9806, -117.3755, -8, 4.6),
        City("Detroit", "US", 42.3314, -83.0458, -5, 4.4),
        City("Seattle", "US", 47.6062, -122.3321, -8, 4.0),
        City("Minneapolis", "US", 44.9778, -93.2650, -6, 3.7),
        City("San Diego", "US", 32.7157, -117.1611, -8, 3.3),
        City("Tampa", "US", 27.9506, -82.4572, -5, 3.2),
        City("Denver", "US", 39.7392, -104.9903, -7, 3.0),
        City("St. Louis", "US", 38.6270, -90.1994, -6, 2.8),
        City("Baltimore", "US", 39.2904, -76.6122, -5, 2.8),
        City("Orlando", "US", 28.5383, -81.3792, -5, 2.7),
        City("Charlotte", "US", 35.2271, -80.8431, -5, 2.7),
        City("San Antonio", "US", 29.4241, -98.4936, -6, 2.6),
        City("Portland", "US", 45.5152, -122.6784, -8, 2.5),
        City("Sacramento", "US", 38.5816, -121.4944, -8, 2.4),
        City("Pittsburgh", "US", 40.4406, -79.9959, -5, 2.4),
        City("Austin", "US", 30.2672, -97.7431, -6, 2.3),
        City("Las Vegas", "US", 36.1699, -115.1398, -8, 2.3),
        City("Cincinnati", "US", 39.1031, -84.5120, -5, 2.3),
        City("Kansas City", "US", 39.0997, -94.5786, -6, 2.2),
        City("Columbus", "US", 39.9612, -82.9988, -5, 2.1),
        City("Indianapolis", "US", 39.7684, -86.1581, -5, 2.1),
        City("Cleveland", "US", 41.4993, -81.6944, -5, 2.1),
        City("Nashville", "US", 36.1627, -86.7816, -6, 2.0),
        City("Salt Lake City", "US", 40.7608, -111.8910, -7, 1.3),
        City("New Orleans", "US", 29.9511, -90.0715, -6, 1.3),
        City("Anchorage", "US", 61.2181, -149.9003, -9, 0.4),
        City("Honolulu", "US", 21.3069, -157.8583, -10, 1.0),
        City("Toronto", "CA", 43.6532, -79.3832, -5, 6.2),
        City("Vancouver", "CA", 49.2827, -123.1207, -8, 2.6),
        City("Mexico City", "MX", 19.4326, -99.1332, -6, 21.8),
        City("Cancún", "MX", 21.1619, -86.8515, -5, 0.9),
        City("London", "GB", 51.5074, -0.1278, 0, 9.5),
        City("Paris", "FR", 48.8566, 2.3522, 1, 11.1),
        City("Madrid", "ES", 40.4168, -3.7038, 1, 6.7),
        City("Rome", "IT", 41.9028, 12.4964, 1, 4.3),
        City("Berlin", "DE", 52.5200, 13.4050, 1, 3.6),
        City("Amsterdam", "NL", 52.3676, 4.9041, 1, 2.5),
        City("Lagos", "NG", 6.5244, 3.3792, 1, 15.4),
        City("Moscow", "RU", 55.7558, 37.6173, 3, 12.6),
        City("Istanbul", "TR", 41.0082, 28.9784, 3, 15.6),
        City("Dubai", "AE", 25.2048, 55.2708, 4, 3.5),
        City("Mumbai", "IN", 19.0760, 72.8777, 5.5, 20.9),
        City("Bangkok", "TH", 13.7563, 100.5018, 7, 10.7),
        City("Singapore", "SG", 1.3521, 103.8198, 8, 5.9),
        City("Manila", "PH", 14.5995, 120.9842, 8, 14.4),
        City("Hong Kong", "HK", 22.3193, 114.1694, 8, 7.5),
        City("Shanghai", "CN", 31.2304, 121.4737, 8, 28.5),
        City("Seoul", "KR", 37.5665, 126.9780, 9, 9.9),
        City("Tokyo", "JP", 35.6762, 139.6503, 9, 37.3),
        City("Sydney", "AU", -33.8688, 151.2093, 10, 5.3),
        City("São Paulo", "BR", -23.5505, -46.6333, -3, 22.4),
        City("Buenos Aires", "AR", -34.6037, -58.3816, -3, 15.4),
        City("Bogotá", "CO", 4.7110, -74.0721, -5, 11.2),
        City("Johannesburg", "ZA", -26.2041, 28.0473, 2, 6.1),
        City("Bucharest", "RO", 44.4268, 26.1025, 2, 1.8),
        City("Kyiv", "UA", 50.4501, 30.5234, 2, 3.0),
    ]
}
