//! ImageNet-style backbones under torchvision parameter names (AlexNet, VGG16, ResNet-18/34/50/101,
//! IR-SE-50, the FID Inception-v3) returning the intermediate feature maps their users need.
//!
//! Status: empty. Filled by the "backbones, training losses and perceptual metrics" issue; no API yet.
