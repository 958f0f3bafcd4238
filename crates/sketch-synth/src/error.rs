//! The error type of the crate: every way user data can be rejected.

/// Errors raised for bad input. Each variant says which value is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SketchError {
    /// An image or mask has zero width or height.
    #[error("image has zero size ({width}x{height})")]
    EmptyImage {
        /// Width of the offending image.
        width: u32,
        /// Height of the offending image.
        height: u32,
    },
    /// Instance masks of one image do not all have the same size.
    #[error(
        "instance {index} has mask size {found:?}, but instance 0 has {expected:?}: all masks of one image must have the same size"
    )]
    MaskSizeMismatch {
        /// Index of the first mask whose size differs.
        index: usize,
        /// (width, height) of the first mask.
        expected: (u32, u32),
        /// (width, height) of the offending mask.
        found: (u32, u32),
    },
    /// Two images that are compared pixel by pixel have different sizes.
    #[error("image sizes differ: {first:?} vs {second:?}")]
    ImageSizeMismatch {
        /// (width, height) of the first image.
        first: (u32, u32),
        /// (width, height) of the second image.
        second: (u32, u32),
    },
    /// A stroke width is zero, negative, or not finite.
    #[error("stroke width must be finite and > 0, got {0}")]
    InvalidStrokeWidth(f32),
    /// A score threshold lies outside [0, 1] or is NaN.
    #[error("score threshold must lie in [0, 1], got {0}")]
    InvalidThreshold(f32),
    /// A stroke point is NaN or infinite.
    #[error("stroke {stroke} has a non-finite point at index {point}")]
    NonFinitePoint {
        /// Index of the stroke.
        stroke: usize,
        /// Index of the point within the stroke.
        point: usize,
    },
    /// A stroke's `widths` does not have one entry per point.
    #[error("stroke {stroke} has {points} points but {widths} widths")]
    WidthCountMismatch {
        /// Index of the stroke.
        stroke: usize,
        /// Number of points.
        points: usize,
        /// Number of widths.
        widths: usize,
    },
    /// No instance was given, so the image size is unknown.
    #[error("no instance masks given: the sketch size is unknown")]
    NoInstances,
    /// A drawer style parameter is out of its valid range.
    #[error("drawer style '{style}': {field} {reason}")]
    InvalidStyle {
        /// Name of the style.
        style: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A sketch cannot be normalised (non-square page, invalid settings).
    #[error("sketch normalisation: {0}")]
    InvalidNormalisation(String),
    /// Invalid augmentation settings.
    #[error("sketch augmentation: {0}")]
    InvalidAugmentation(String),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, SketchError>;
