#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension GeoPoint {
    public static let earthRadiusKm = 6371.0088

    /// Great-circle (haversine) distance in kilometres.
    public func distanceKm(to other: GeoPoint) -> Double {
        let rad = Double.pi / 180
        let dLat = (other.latitude - latitude) * rad
        let dLon = (other.longitude - longitude) * rad
        let s1 = sin(dLat / 2)
        let s2 = sin(dLon / 2)
        let a = s1 * s1 + cos(latitude * rad) * cos(other.latitude * rad) * s2 * s2
        return 2 * GeoPoint.earthRadiusKm * asin(min(1, a.squareRoot()))
    }
}
