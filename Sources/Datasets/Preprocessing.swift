import Compute

/// Preprocessing applied to raw images before they reach a model.
///
/// IDX and .npy images are padded by `pad` black pixels and normalised. Image folders (JPEG/PNG) go through
/// torchvision's usual chain instead: `Resize(resize)` (shorter side, bilinear with antialiasing, as PIL does it),
/// `CenterCrop(crop)`, `ToTensor` (/255), `Normalize(mean, std)`, with the colour planes in `channelOrder` and
/// channels first or last (`layout`).
/// Defaults match ../shared/models/README.md: pad 2, x = (p/255 − 0.2860)/0.3530.
public struct Preprocessing: Sendable, Equatable {
    public var pad: Int
    /// One value for every channel, or one per channel (in the model's channel order).
    public var mean: [Float]
    /// One value for every channel, or one per channel (in the model's channel order).
    public var std: [Float]
    /// Image folders: the shorter side is resized to this many pixels, keeping the aspect ratio (nil: not resized).
    public var resize: Int?
    /// Image folders: the centre `crop`×`crop` square is kept (nil: not cropped).
    public var crop: Int?
    /// Image folders: the order of the colour planes the model expects.
    public var channelOrder: ChannelOrder
    /// Byte images: the model's input layout, channels first (N×C×H×W) or last (N×H×W×C, as TensorFlow exports).
    public var layout: Layout

    public enum ChannelOrder: String, Sendable, CaseIterable { case rgb, bgr }
    public enum Layout: String, Sendable, CaseIterable { case nchw, nhwc }

    public init(pad: Int = 2, mean: Float = 0.2860, std: Float = 0.3530) {
        self.init(pad: pad, mean: [mean], std: [std])
    }

    public init(pad: Int = 0, mean: [Float], std: [Float], resize: Int? = nil, crop: Int? = nil, channelOrder: ChannelOrder = .rgb,
                layout: Layout = .nchw) {
        self.pad = pad
        self.mean = mean
        self.std = std
        self.resize = resize
        self.crop = crop
        self.channelOrder = channelOrder
        self.layout = layout
    }

    /// Leaves float images exactly as stored (they are already preprocessed).
    public static let none = Preprocessing(pad: 0, mean: 0, std: 1)

    /// torchvision's ImageNet statistics, the default for image folders.
    public static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
    public static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

    /// `mean` and `std` spread over `channels` planes: a single value is used for every channel.
    func perChannel(_ channels: Int) throws -> (mean: [Float], std: [Float]) {
        func spread(_ values: [Float], _ name: String) throws -> [Float] {
            if values.count == 1 { return Array(repeating: values[0], count: channels) }
            guard values.count == channels else {
                throw DatasetError.mismatch("--\(name) has \(values.count) values but the images have \(channels) channel\(channels == 1 ? "" : "s"); give one value, or one per channel")
            }
            return values
        }
        return (try spread(mean, "mean"), try spread(std, "std"))
    }
}
