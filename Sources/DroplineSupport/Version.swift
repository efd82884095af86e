/// Dropline's version, recorded in every manifest and printed by `dropline --version`.
public enum DroplineVersion {
    public static let current = "0.1.0"
}
