//! ONNX export: a [`Detector`]'s network as a standard ONNX file (opset 17) that ONNX Runtime,
//! TensorRT, OpenVINO or onnxruntime-web run without SSD-specific code.
//!
//! The graph's input is `images`, float32 `[N, 3, S, S]` (RGB in 0..255, resized to `S x S`,
//! minus the mean: the network's own input, [`Detector::preprocess`]), with a dynamic batch axis
//! `N`. Without post-processing its outputs are `loc [N, P, 4]` and `conf [N, P, C]`, exactly as
//! [`Ssd::forward`](crate::Ssd::forward) returns them. With it ([`OnnxOptions::post_process`]) the
//! graph also applies softmax, decodes the boxes against the priors (a constant of the graph) and
//! runs per-class NMS with the detector's [`PostProcessConfig`], and its outputs are
//! `num_detections [N]` (int64), `boxes [N, D, 4]` (normalised `[xmin, ymin, xmax, ymax]`, clipped
//! to `[0, 1]`), `scores [N, D]` and `labels [N, D]` (int64, 1-based; 0 in the padding), best
//! first, the first `num_detections[n]` rows of image `n` valid, `D` the detections kept per
//! image. The same detections as [`Detector::detect`] (which scales the boxes to the image's
//! pixels): the per-class top-k is taken before NMS as there, by a `TopK` in front of ONNX's
//! `NonMaxSuppression`.
//!
//! The model's metadata (`metadata_props`) names what a user needs to decode the plain outputs:
//! `classes` (JSON list, index 0 the background), `ssd_config` (the [`SsdConfig`] as JSON),
//! `priors` (JSON `[[cx, cy, w, h], ...]`, in output order), `variances`, `mean_rgb` and
//! `std_rgb` (the input is `(rgb - mean_rgb) / std_rgb` per channel of 0..255 values), with
//! post-processing `post_process`, and for data whose categories have ids (COCO), `category_ids`.
//!
//! The protobuf is written by `prost` from types generated from ONNX's own `onnx.proto`
//! (`tools/onnx-proto`).

// Generated: every message of onnx.proto, most unused here.
#[allow(
    missing_docs,
    unreachable_pub,
    dead_code,
    clippy::all,
    clippy::pedantic
)]
mod proto;

use std::path::{Path, PathBuf};

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use prost::Message;
use ssd_core::BoxCoder;
use ssd_data::DataError;
use ssd_data::output;

use crate::{
    BaseConfig, BatchNorm, ConvBn, Detector, L2NORM_EPS, L2Norm, LiteSsd, ModelError,
    PostProcessConfig, ResNetSsd, Ssd, SsdConfig, VggBase, VggSsd,
};
use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto::Dimension,
};

/// The ONNX operator set the graph uses (ai.onnx).
pub const OPSET: i64 = 17;
/// The ONNX IR version written (the one of opset 17).
pub const IR_VERSION: i64 = 8;

/// What to put in the graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnnxOptions {
    /// Softmax, box decoding and per-class NMS inside the graph, with the detector's
    /// [`PostProcessConfig`]; the outputs are then detections.
    pub post_process: bool,
    /// Replace an existing output file ([`write_onnx`]); without it one is refused.
    pub overwrite: bool,
}

/// What [`write_onnx`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxSummary {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// Graph nodes.
    pub nodes: usize,
    /// Weights stored as initializers (tensors).
    pub initializers: usize,
    /// The graph's outputs, in order.
    pub outputs: Vec<String>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The output may not be written: it exists (without `overwrite`), is not a regular file, is
    /// the model's own file, or its folder is missing; or writing it failed.
    #[error(transparent)]
    Output(#[from] DataError),
    /// Reading the weights from the device, or an invalid post-processing setting.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The detector's network (and, with [`OnnxOptions::post_process`], its post-processing) as the
/// bytes of an ONNX model.
pub fn to_onnx(detector: &Detector, options: &OnnxOptions) -> Result<Vec<u8>, OnnxError> {
    Ok(build(detector, options)?.encode_to_vec())
}

/// Writes [`to_onnx`]'s model to `path` atomically (a temporary file in the same folder, renamed
/// over `path` once complete; one left by a killed export is removed): a failed export leaves no
/// partial file. Refuses an existing file unless [`OnnxOptions::overwrite`], and whatever it says
/// anything but a regular file (a link, a device) and the detector's own weights
/// ([`ssd_data::output`]).
pub fn write_onnx(
    detector: &Detector,
    path: &Path,
    options: &OnnxOptions,
) -> Result<OnnxSummary, OnnxError> {
    output::check_output(path, options.overwrite, [detector.source()])?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(DataError::NoOutputFolder {
            path: path.to_owned(),
            folder,
        }
        .into());
    }
    let model = build(detector, options)?;
    let bytes = model.encode_to_vec();
    output::write_atomically(path, &bytes)?;
    let graph = model.graph.unwrap_or_default();
    Ok(OnnxSummary {
        path: path.to_owned(),
        bytes: bytes.len(),
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
        outputs: graph.output.into_iter().filter_map(|o| o.name).collect(),
    })
}

/// The ONNX model of `detector`.
fn build(detector: &Detector, options: &OnnxOptions) -> Result<ModelProto, OnnxError> {
    let config = detector.config();
    let mut g = Graph::default();
    let (loc, conf) = network(&mut g, detector)?;
    let side = config.input_size() as i64;
    let p = config.num_priors() as i64;
    let c = config.num_classes as i64;
    let batch = || Dim::Named("N");
    let mut outputs = Vec::new();
    let mut metadata = metadata(detector)?;
    if options.post_process {
        let post = *detector.post_process();
        post.validate().map_err(ModelError::from)?;
        let d = detections(&mut g, config, &post, &loc, &conf)?;
        let per_image = d.per_image as i64;
        outputs.push(value("num_detections", DataType::Int64, vec![batch()]));
        let mut o = value(
            "boxes",
            DataType::Float,
            [batch(), per_image.into(), 4.into()],
        );
        o.doc_string = Some("[xmin, ymin, xmax, ymax] in [0, 1] of the image".into());
        outputs.push(o);
        outputs.push(value(
            "scores",
            DataType::Float,
            vec![batch(), per_image.into()],
        ));
        let mut o = value("labels", DataType::Int64, vec![batch(), per_image.into()]);
        o.doc_string =
            Some("1-based class labels (see metadata `classes`); 0 in the padding".into());
        outputs.push(o);
        for (name, from) in ["num_detections", "boxes", "scores", "labels"]
            .into_iter()
            .zip([d.count, d.boxes, d.scores, d.labels])
        {
            g.rename(&from, name);
        }
        metadata.push(entry(
            "post_process",
            &serde_json::json!({
                "min_score": post.min_score,
                "top_k_per_class": post.top_k_per_class,
                "nms_overlap": post.nms_overlap,
                "top_k": post.top_k,
            })
            .to_string(),
        ));
    } else {
        let mut o = value("loc", DataType::Float, [batch(), p.into(), 4.into()]);
        o.doc_string = Some(
            "encoded box offsets per prior (metadata `priors`, `variances`), SSD's encoding".into(),
        );
        outputs.push(o);
        let mut o = value("conf", DataType::Float, [batch(), p.into(), c.into()]);
        o.doc_string = Some("class logits per prior, class 0 the background (no softmax)".into());
        outputs.push(o);
        g.rename(&loc, "loc");
        g.rename(&conf, "conf");
    }
    let mut input = value(
        "images",
        DataType::Float,
        [batch(), 3.into(), side.into(), side.into()],
    );
    input.doc_string = Some(format!(
        "RGB in 0..255 resized to {side}x{side}, minus metadata `mean_rgb`, divided by `std_rgb`, NCHW"
    ));
    let names: Vec<&str> = detector
        .classes()
        .names()
        .iter()
        .map(String::as_str)
        .collect();
    let graph = GraphProto {
        name: Some("ssd".into()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![input],
        output: outputs,
        doc_string: Some(format!(
            "SSD {side}x{side}, {} classes: {}",
            names.len(),
            names.join(", ")
        )),
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("ssd".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "SSD (Single Shot MultiBox Detector) exported from {}; classes: background, {}",
            detector.source().display(),
            names.join(", ")
        )),
        graph: Some(graph),
        metadata_props: metadata,
        ..ModelProto::default()
    })
}

/// The metadata a user needs to decode the outputs.
fn metadata(detector: &Detector) -> Result<Vec<StringStringEntryProto>, OnnxError> {
    let config = detector.config();
    let json = |v: serde_json::Value| v.to_string();
    let mut classes = vec!["background".to_owned()];
    classes.extend(detector.classes().names().iter().cloned());
    let priors = config
        .priors
        .priors()
        .map_err(|e| ModelError::Config(crate::ConfigError::Priors(e)))?;
    let priors: Vec<[f32; 4]> = priors.iter().map(|p| [p.cx, p.cy, p.w, p.h]).collect();
    let coder = BoxCoder::default();
    let config_json = serde_json::to_string(config).map_err(|e| {
        ModelError::Input(format!(
            "cannot write the model's configuration as JSON: {e}"
        ))
    })?;
    let mut entries = vec![
        entry("classes", &json(serde_json::json!(classes))),
        entry("ssd_config", &config_json),
        entry("priors", &json(serde_json::json!(priors))),
        entry("variances", &json(serde_json::json!(coder.variances))),
        entry("mean_rgb", &json(serde_json::json!(config.mean_rgb))),
        entry("std_rgb", &json(serde_json::json!(config.std_rgb))),
    ];
    if let Some(ids) = detector.classes().category_ids() {
        entries.push(entry("category_ids", &json(serde_json::json!(ids))));
    }
    Ok(entries)
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

/// The network's nodes; returns the names of `loc` and `conf`.
fn network(g: &mut Graph, detector: &Detector) -> Result<(String, String), OnnxError> {
    let config = detector.config();
    let model = detector.model().ok_or_else(|| {
        OnnxError::Model(ModelError::Engine(
            "the detector runs in ONNX Runtime: export from its weights file".into(),
        ))
    })?;
    let (heads_loc, heads_conf) = match (model, &config.base) {
        (Ssd::Vgg(model), BaseConfig::Vgg(base)) => vgg_heads(g, model, base)?,
        (Ssd::Lite(model), BaseConfig::MobilenetV3(_)) => lite_heads(g, model)?,
        (Ssd::Resnet(model), BaseConfig::Resnet(_)) => resnet_heads(g, model)?,
        _ => {
            return Err(OnnxError::Model(ModelError::Weights {
                path: detector.source().to_owned(),
                message: "the network does not match its configuration".to_owned(),
            }));
        }
    };
    let classes = config.num_classes as i64;
    let mut locs = Vec::new();
    let mut confs = Vec::new();
    for (head, width, parts, out) in [
        ("loc", 4, heads_loc, &mut locs),
        ("conf", classes, heads_conf, &mut confs),
    ] {
        let _ = head;
        for y in parts {
            let y = g.node("Transpose", &[&y], vec![ints("perm", &[0, 2, 3, 1])]);
            let shape = g.constant_i64(&[0, -1, width]);
            out.push(g.node("Reshape", &[&y, &shape], vec![]));
        }
    }
    let cat = |g: &mut Graph, parts: &[String]| {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        g.node("Concat", &refs, vec![int("axis", 1)])
    };
    let loc = cat(g, &locs);
    let conf = cat(g, &confs);
    Ok((loc, conf))
}

/// Each head's output per source, `[N, A*K, H, W]`, of the VGG network.
fn vgg_heads(
    g: &mut Graph,
    model: &VggSsd,
    base: &VggBase,
) -> Result<(Vec<String>, Vec<String>), OnnxError> {
    let layout = &model.layout;
    let mut convs = model.vgg.iter().chain(&model.extras).enumerate();
    let mut x = "images".to_owned();
    let mut sources = Vec::new();
    let last = layout.blocks.len() - 1;
    for (b, &n) in layout.blocks.iter().enumerate() {
        for (i, conv) in convs.by_ref().take(n) {
            x = conv_relu(g, &x, conv, model.norms.get(i), &format!("vgg.{i}"))?;
        }
        if b == base.vgg.source_block {
            sources.push(l2norm(g, &x, &model.l2norm)?);
        }
        x = if b < last {
            g.node(
                "MaxPool",
                &[&x],
                vec![
                    ints("kernel_shape", &[2, 2]),
                    ints("strides", &[2, 2]),
                    int("ceil_mode", i64::from(b == base.vgg.ceil_pool_block)),
                ],
            )
        } else {
            g.node(
                "MaxPool",
                &[&x],
                vec![
                    ints("kernel_shape", &[3, 3]),
                    ints("strides", &[1, 1]),
                    ints("pads", &[1, 1, 1, 1]),
                ],
            )
        };
    }
    for (i, conv) in convs.by_ref().take(2) {
        x = conv_relu(g, &x, conv, model.norms.get(i), &format!("vgg.{i}"))?;
    }
    sources.push(x.clone());
    let vgg = model.vgg.len();
    for (i, conv) in convs {
        x = conv_relu(
            g,
            &x,
            conv,
            model.norms.get(i),
            &format!("extras.{}", i - vgg),
        )?;
        if !(i - vgg).is_multiple_of(2) {
            sources.push(x.clone());
        }
    }
    plain_heads(g, &sources, &model.loc, &model.conf)
}

/// The activation of an SSDLite layer, as ONNX nodes.
#[derive(Clone, Copy)]
enum OnnxAct {
    None,
    Relu,
    Relu6,
    HardSwish,
}

fn act_node(g: &mut Graph, x: &str, act: OnnxAct) -> String {
    match act {
        OnnxAct::None => x.to_owned(),
        OnnxAct::Relu => g.node("Relu", &[x], vec![]),
        OnnxAct::Relu6 => {
            let lo = g.constant_f32(&[], &[0.0]);
            let hi = g.constant_f32(&[], &[6.0]);
            g.node("Clip", &[x, &lo, &hi], vec![])
        }
        OnnxAct::HardSwish => g.node("HardSwish", &[x], vec![]),
    }
}

/// `act(batch_norm(conv(x)))` of an SSDLite [`ConvBn`].
fn conv_bn(
    g: &mut Graph,
    x: &str,
    layer: &ConvBn,
    act: OnnxAct,
    name: &str,
) -> Result<String, OnnxError> {
    let y = conv_node(g, x, &layer.conv, name)?;
    let y = batch_norm_node(g, &y, &layer.bn, name)?;
    Ok(act_node(g, &y, act))
}

/// Each head's output per source of SSDLite on MobileNetV3-Large.
fn lite_heads(g: &mut Graph, model: &LiteSsd) -> Result<(Vec<String>, Vec<String>), OnnxError> {
    let net = &model.backbone;
    let mut x = conv_bn(g, "images", &net.stem, OnnxAct::HardSwish, "stem")?;
    let mut sources = Vec::new();
    for (i, block) in net.blocks.iter().enumerate() {
        let name = format!("blocks.{i}");
        let act = if block.hard_swish() {
            OnnxAct::HardSwish
        } else {
            OnnxAct::Relu
        };
        let input = x.clone();
        let mut y = match &block.expand {
            Some(e) => conv_bn(g, &x, e, act, &format!("{name}.expand"))?,
            None => x.clone(),
        };
        if i == crate::lite::C4_BLOCK {
            sources.push(y.clone());
        }
        y = conv_bn(g, &y, &block.depthwise, act, &format!("{name}.depthwise"))?;
        if let Some(se) = &block.se {
            let pooled = g.node("GlobalAveragePool", &[&y], vec![]);
            let s = conv_node(g, &pooled, &se.fc1, &format!("{name}.se.fc1"))?;
            let s = g.node("Relu", &[&s], vec![]);
            let s = conv_node(g, &s, &se.fc2, &format!("{name}.se.fc2"))?;
            let s = g.node(
                "HardSigmoid",
                &[&s],
                vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
            );
            y = g.node("Mul", &[&y, &s], vec![]);
        }
        y = conv_bn(
            g,
            &y,
            &block.project,
            OnnxAct::None,
            &format!("{name}.project"),
        )?;
        x = if block.is_residual() {
            g.node("Add", &[&y, &input], vec![])
        } else {
            y
        };
    }
    x = conv_bn(g, &x, &net.last, OnnxAct::HardSwish, "last")?;
    sources.push(x.clone());
    for (i, block) in model.extras.iter().enumerate() {
        let name = format!("extras.{i}");
        x = conv_bn(
            g,
            &x,
            &block.reduce,
            OnnxAct::Relu6,
            &format!("{name}.reduce"),
        )?;
        x = conv_bn(
            g,
            &x,
            &block.depthwise,
            OnnxAct::Relu6,
            &format!("{name}.depthwise"),
        )?;
        x = conv_bn(
            g,
            &x,
            &block.expand,
            OnnxAct::Relu6,
            &format!("{name}.expand"),
        )?;
        sources.push(x.clone());
    }
    let mut locs = Vec::new();
    let mut confs = Vec::new();
    for (k, ((s, l), c)) in sources.iter().zip(&model.loc).zip(&model.conf).enumerate() {
        for (head, block, out) in [("loc", l, &mut locs), ("conf", c, &mut confs)] {
            let name = format!("{head}.{k}");
            let y = conv_bn(
                g,
                s,
                &block.depthwise,
                OnnxAct::Relu6,
                &format!("{name}.depthwise"),
            )?;
            out.push(conv_node(g, &y, &block.output, &format!("{name}.output"))?);
        }
    }
    Ok((locs, confs))
}

/// Each head's output per source of the ResNet SSD.
fn resnet_heads(g: &mut Graph, model: &ResNetSsd) -> Result<(Vec<String>, Vec<String>), OnnxError> {
    let x = conv_bn(g, "images", &model.stem, OnnxAct::Relu, "stem")?;
    let mut x = g.node(
        "MaxPool",
        &[&x],
        vec![
            ints("kernel_shape", &[3, 3]),
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
        ],
    );
    for (l, layer) in model.layers.iter().enumerate() {
        for (b, block) in layer.iter().enumerate() {
            let name = format!("layers.{l}.{b}");
            let y = conv_bn(g, &x, &block.conv1, OnnxAct::Relu, &format!("{name}.conv1"))?;
            let y = conv_bn(g, &y, &block.conv2, OnnxAct::Relu, &format!("{name}.conv2"))?;
            let y = conv_bn(g, &y, &block.conv3, OnnxAct::None, &format!("{name}.conv3"))?;
            let shortcut = match &block.downsample {
                Some(d) => conv_bn(g, &x, d, OnnxAct::None, &format!("{name}.downsample"))?,
                None => x.clone(),
            };
            let sum = g.node("Add", &[&y, &shortcut], vec![]);
            x = g.node("Relu", &[&sum], vec![]);
        }
    }
    let mut sources = vec![x.clone()];
    for (i, layer) in model.extras.iter().enumerate() {
        x = conv_bn(g, &x, layer, OnnxAct::Relu, &format!("extras.{i}"))?;
        if i % 2 == 1 {
            sources.push(x.clone());
        }
    }
    plain_heads(g, &sources, &model.loc, &model.conf)
}

/// The 3x3 conv heads of VGG and ResNet on each source: `loc` and `conf` outputs.
fn plain_heads(
    g: &mut Graph,
    sources: &[String],
    loc: &[Conv2d],
    conf: &[Conv2d],
) -> Result<(Vec<String>, Vec<String>), OnnxError> {
    let mut locs = Vec::new();
    let mut confs = Vec::new();
    for (k, ((s, l), c)) in sources.iter().zip(loc).zip(conf).enumerate() {
        locs.push(conv_node(g, s, l, &format!("loc.{k}"))?);
        confs.push(conv_node(g, s, c, &format!("conf.{k}"))?);
    }
    Ok((locs, confs))
}

/// `relu(batch_norm(conv(x)))` (no batch norm where the network has none).
fn conv_relu(
    g: &mut Graph,
    x: &str,
    conv: &Conv2d,
    norm: Option<&BatchNorm>,
    name: &str,
) -> Result<String, OnnxError> {
    let mut y = conv_node(g, x, conv, name)?;
    if let Some(bn) = norm {
        y = batch_norm_node(g, &y, bn, name)?;
    }
    Ok(g.node("Relu", &[&y], vec![]))
}

/// A `BatchNormalization` node (inference: the running statistics) with the layer's weights.
fn batch_norm_node(
    g: &mut Graph,
    x: &str,
    bn: &BatchNorm,
    name: &str,
) -> Result<String, OnnxError> {
    let scale = g.weight(&format!("{name}.bn.weight"), bn.gamma.val())?;
    let bias = g.weight(&format!("{name}.bn.bias"), bn.beta.val())?;
    let mean = g.weight(&format!("{name}.bn.running_mean"), bn.running_mean.value())?;
    let var = g.weight(&format!("{name}.bn.running_var"), bn.running_var.value())?;
    Ok(g.node(
        "BatchNormalization",
        &[x, &scale, &bias, &mean, &var],
        vec![float("epsilon", bn.epsilon as f32)],
    ))
}

/// A `Conv` node with the layer's weights, stride, padding and dilation.
fn conv_node(g: &mut Graph, x: &str, conv: &Conv2d, name: &str) -> Result<String, OnnxError> {
    let w = g.weight(&format!("{name}.weight"), conv.weight.val())?;
    let mut inputs = vec![x.to_owned(), w];
    if let Some(b) = &conv.bias {
        inputs.push(g.weight(&format!("{name}.bias"), b.val())?);
    }
    let [top, left, bottom, right] = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) => [t, l, b, r],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => {
            let [kh, kw] = conv.kernel_size;
            let [dh, dw] = conv.dilation;
            let (h, w) = ((kh - 1) * dh, (kw - 1) * dw);
            [h / 2, w / 2, h - h / 2, w - w / 2]
        }
    };
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let i = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
    Ok(g.node(
        "Conv",
        &refs,
        vec![
            ints("kernel_shape", &i(conv.kernel_size)),
            ints("strides", &i(conv.stride)),
            ints("dilations", &i(conv.dilation)),
            int("group", conv.groups as i64),
            // ONNX: [x1_begin, x2_begin, x1_end, x2_end].
            ints(
                "pads",
                &[top as i64, left as i64, bottom as i64, right as i64],
            ),
        ],
    ))
}

/// L2Norm on conv4_3: `x / sqrt(sum_c x^2 + eps) * scale`.
fn l2norm(g: &mut Graph, x: &str, layer: &L2Norm) -> Result<String, OnnxError> {
    let weight = layer.weight.val();
    let channels = weight.dims()[0];
    let scale = g.weight("l2norm.weight", weight.reshape([1, channels, 1, 1]))?;
    let square = g.node("Mul", &[x, x], vec![]);
    let axes = g.constant_i64(&[1]);
    let sum = g.node("ReduceSum", &[&square, &axes], vec![int("keepdims", 1)]);
    let eps = g.constant_f32(&[], &[L2NORM_EPS as f32]);
    let sum = g.node("Add", &[&sum, &eps], vec![]);
    let norm = g.node("Sqrt", &[&sum], vec![]);
    let y = g.node("Div", &[x, &norm], vec![]);
    Ok(g.node("Mul", &[&y, &scale], vec![]))
}

/// The names of the post-processing outputs.
struct DetectionOutputs {
    count: String,
    boxes: String,
    scores: String,
    labels: String,
    per_image: usize,
}

/// Softmax, decoding and per-class NMS: the graph of [`crate::PostProcessor::detect`].
///
/// Per image and foreground class: the `K = min(top_k_per_class, P)` best scores (`TopK`, ties:
/// lower index first, as ours), NMS over those (each (image, class) pair a batch of ONNX's
/// `NonMaxSuppression`, so classes never suppress each other), then the best
/// `D = min(top_k, (C - 1) K)` survivors of the image over all classes (`TopK` over a
/// dense `[N, (C - 1) K]` score table, -1 where NMS dropped a box).
fn detections(
    g: &mut Graph,
    config: &SsdConfig,
    post: &PostProcessConfig,
    loc: &str,
    conf: &str,
) -> Result<DetectionOutputs, OnnxError> {
    let p = config.num_priors();
    let fg = config.num_classes as i64 - 1;
    let k = post.top_k_per_class.min(p) as i64;
    let per_image = (post.top_k as i64).min(fg * k);
    let priors = config
        .priors
        .priors()
        .map_err(|e| ModelError::Config(crate::ConfigError::Priors(e)))?;
    let centre: Vec<f32> = priors.iter().flat_map(|b| [b.cx, b.cy]).collect();
    let size: Vec<f32> = priors.iter().flat_map(|b| [b.w, b.h]).collect();
    let dims = [1, p as i64, 2];
    let prior_centre = g.initializer_f32("priors.centre", &dims, &centre);
    let prior_size = g.initializer_f32("priors.size", &dims, &size);
    let [v0, v1] = BoxCoder::default().variances;
    // Decoding, in the order of operations of `PostProcessor::decode`.
    let slice = |g: &mut Graph, x: &str, from: i64, to: i64, axis: i64| {
        let starts = g.constant_i64(&[from]);
        let ends = g.constant_i64(&[to]);
        let axes = g.constant_i64(&[axis]);
        g.node("Slice", &[x, &starts, &ends, &axes], vec![])
    };
    let offset = slice(g, loc, 0, 2, 2);
    let log_size = slice(g, loc, 2, 4, 2);
    let v0 = g.constant_f32(&[], &[v0]);
    let v1 = g.constant_f32(&[], &[v1]);
    let centre = g.node("Mul", &[&offset, &v0], vec![]);
    let centre = g.node("Mul", &[&centre, &prior_size], vec![]);
    let centre = g.node("Add", &[&centre, &prior_centre], vec![]);
    let wh = g.node("Mul", &[&log_size, &v1], vec![]);
    let wh = g.node("Exp", &[&wh], vec![]);
    let wh = g.node("Mul", &[&wh, &prior_size], vec![]);
    let two = g.constant_f32(&[], &[2.0]);
    let half = g.node("Div", &[&wh, &two], vec![]);
    let low = g.node("Sub", &[&centre, &half], vec![]);
    let high = g.node("Add", &[&centre, &half], vec![]);
    let mut boxes = g.node("Concat", &[&low, &high], vec![int("axis", 2)]);
    if config.clips_before_nms() {
        let zero = g.constant_f32(&[], &[0.0]);
        let one = g.constant_f32(&[], &[1.0]);
        boxes = g.node("Clip", &[&boxes, &zero, &one], vec![]);
    }
    // Scores per (image, foreground class): [N * (C - 1), P].
    let probs = g.node("Softmax", &[conf], vec![int("axis", 2)]);
    let probs = g.node("Transpose", &[&probs], vec![ints("perm", &[0, 2, 1])]);
    let probs = slice(g, &probs, 1, fg + 1, 1);
    let rows = g.constant_i64(&[-1, p as i64]);
    let probs = g.node("Reshape", &[&probs, &rows], vec![]);
    let k_tensor = g.constant_i64(&[k]);
    let top = g.nodes_n(
        "TopK",
        &[&probs, &k_tensor],
        vec![int("axis", 1), int("largest", 1), int("sorted", 1)],
        2,
    );
    let (top_scores, top_index) = (&top[0], &top[1]);
    // Their boxes: [N, C - 1, K, 4], then one NMS batch per (image, class).
    let index_shape = g.constant_i64(&[-1, fg, k, 1]);
    let index = g.node("Reshape", &[top_index, &index_shape], vec![]);
    let top_boxes = g.node("GatherND", &[&boxes, &index], vec![int("batch_dims", 1)]);
    let batch_shape = g.constant_i64(&[-1, k, 4]);
    let top_boxes = g.node("Reshape", &[&top_boxes, &batch_shape], vec![]);
    let axis1 = g.constant_i64(&[1]);
    let nms_scores = g.node("Unsqueeze", &[top_scores, &axis1], vec![]);
    let max_out = g.constant_i64(&[k]);
    let iou = g.constant_f32(&[1], &[post.nms_overlap]);
    let threshold = g.constant_f32(&[1], &[post.min_score]);
    let selected = g.node(
        "NonMaxSuppression",
        &[&top_boxes, &nms_scores, &max_out, &iou, &threshold],
        vec![int("center_point_box", 0)],
    );
    // The dense table of survivors' scores, -1 elsewhere: [N, (C - 1) K].
    let columns = g.constant_i64(&[0, 2]);
    let pairs = g.node("Gather", &[&selected, &columns], vec![int("axis", 1)]);
    let kept = g.node("GatherND", &[top_scores, &pairs], vec![]);
    let table_shape = g.node("Shape", &[top_scores], vec![]);
    let minus_one = g.tensor_f32("", &[1], &[-1.0]);
    let table = g.node(
        "ConstantOfShape",
        &[&table_shape],
        vec![tensor_attr("value", minus_one)],
    );
    let table = g.node("ScatterND", &[&table, &pairs, &kept], vec![]);
    let per_row = g.constant_i64(&[-1, fg * k]);
    let table = g.node("Reshape", &[&table, &per_row], vec![]);
    let d_tensor = g.constant_i64(&[per_image]);
    let best = g.nodes_n(
        "TopK",
        &[&table, &d_tensor],
        vec![int("axis", 1), int("largest", 1), int("sorted", 1)],
        2,
    );
    let (best_scores, flat) = (&best[0], &best[1]);
    // Labels and priors of the best.
    let k_scalar = g.constant_i64_scalar(k);
    let class = g.node("Div", &[flat, &k_scalar], vec![]);
    let one = g.constant_i64_scalar(1);
    let labels = g.node("Add", &[&class, &one], vec![]);
    let index = g.node("Reshape", &[top_index, &per_row], vec![]);
    let prior = g.node("GatherElements", &[&index, flat], vec![int("axis", 1)]);
    let last = g.constant_i64(&[-1]);
    let prior = g.node("Unsqueeze", &[&prior, &last], vec![]);
    let chosen = g.node("GatherND", &[&boxes, &prior], vec![int("batch_dims", 1)]);
    let zero_f = g.constant_f32(&[], &[0.0]);
    let one_f = g.constant_f32(&[], &[1.0]);
    let chosen = g.node("Clip", &[&chosen, &zero_f, &one_f], vec![]);
    // The padding: scores, boxes and labels 0 where fewer survived.
    let half_neg = g.constant_f32(&[], &[-0.5]);
    let valid = g.node("Greater", &[best_scores, &half_neg], vec![]);
    let scores = g.node("Where", &[&valid, best_scores, &zero_f], vec![]);
    let zero_i = g.constant_i64_scalar(0);
    let labels = g.node("Where", &[&valid, &labels, &zero_i], vec![]);
    let valid_box = g.node("Unsqueeze", &[&valid, &last], vec![]);
    let boxes = g.node("Where", &[&valid_box, &chosen, &zero_f], vec![]);
    let counted = g.node("Cast", &[&valid], vec![int("to", DataType::Int64 as i64)]);
    let count = g.node("ReduceSum", &[&counted, &axis1], vec![int("keepdims", 0)]);
    Ok(DetectionOutputs {
        count,
        boxes,
        scores,
        labels,
        per_image: per_image as usize,
    })
}

/// A dimension of a graph input or output.
enum Dim {
    Fixed(i64),
    Named(&'static str),
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Fixed(v)
    }
}

fn value(name: &str, dtype: DataType, dims: impl IntoIterator<Item = Dim>) -> ValueInfoProto {
    let dim = dims
        .into_iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(v) => proto::tensor_shape_proto::dimension::Value::DimValue(v),
                Dim::Named(n) => proto::tensor_shape_proto::dimension::Value::DimParam(n.into()),
            }),
            ..Dimension::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(dtype as i32),
                    shape: Some(TensorShapeProto { dim }),
                },
            )),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..AttributeProto::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attribute(name, AttributeType::Int)
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attribute(name, AttributeType::Ints)
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attribute(name, AttributeType::Float)
    }
}

fn tensor_attr(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attribute(name, AttributeType::Tensor)
    }
}

/// The graph under construction: nodes in topological order, initializers, fresh names.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

impl Graph {
    fn fresh(&mut self, op: &str) -> String {
        self.next += 1;
        format!("{}_{}", op.to_ascii_lowercase(), self.next)
    }

    /// A node with one output; returns its name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.nodes_n(op, inputs, attrs, 1).remove(0)
    }

    /// A node with `n` outputs; returns their names.
    fn nodes_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        n: usize,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let outputs: Vec<String> = (0..n).map(|i| format!("{name}:{i}")).collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: outputs.clone(),
            name: Some(name),
            op_type: Some(op.into()),
            attribute: attrs,
            ..NodeProto::default()
        });
        outputs
    }

    /// Renames the value `from` (a node output) to `to`, the name of a graph output.
    fn rename(&mut self, from: &str, to: &str) {
        for node in &mut self.nodes {
            for name in node.input.iter_mut().chain(node.output.iter_mut()) {
                if name == from {
                    *name = to.to_owned();
                }
            }
        }
    }

    fn tensor_f32(&self, name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        }
    }

    fn initializer_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let t = self.tensor_f32(name, dims, values);
        self.initializers.push(t);
        name.to_owned()
    }

    fn constant_f32(&mut self, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh("const");
        self.initializer_f32(&name, dims, values)
    }

    fn constant_i64_dims(&mut self, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh("const");
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        });
        name
    }

    /// A 1-D int64 constant.
    fn constant_i64(&mut self, values: &[i64]) -> String {
        self.constant_i64_dims(&[values.len() as i64], values)
    }

    /// A scalar int64 constant.
    fn constant_i64_scalar(&mut self, v: i64) -> String {
        self.constant_i64_dims(&[], &[v])
    }

    /// A weight of the network as an initializer named after its parameter.
    fn weight<const D: usize>(&mut self, name: &str, t: Tensor<D>) -> Result<String, OnnxError> {
        let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        let values: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| ModelError::Device(format!("weight {name}: {e:?}")))?;
        Ok(self.initializer_f32(name, &dims, &values))
    }
}
