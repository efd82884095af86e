/// # Imaging
///
/// Dropline's eyes: decode JPEG and PNG (with libjpeg-turbo and libpng) into one representation,
/// 8-bit RGB, whatever the file stored; apply EXIF orientation; refuse decompression bombs from the
/// header; transform (resize, crop, flip, rotate, blur, noise, brightness, contrast); encode; and hand
/// pixels to the network as float tensors.
///
/// Why one representation: every downstream component (drift features, the network, explanations)
/// wants the same thing, and converting at the edge keeps them simple. Alpha is composited over white
/// (a transparent background reads as paper, as it does in every viewer), 16-bit samples are reduced
/// to 8 bits, CMYK is converted with the naive formula that Pillow also uses.
///
/// Numeric code does not throw: misuse (a negative size) is a precondition naming the offending value.
/// Decoding throws `ImagingError` for bad files, each with a kind, the file, libjpeg's or libpng's own
/// words, and a remedy.
public enum Imaging {}
