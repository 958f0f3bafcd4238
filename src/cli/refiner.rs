//! `sketch2medi refiner train`: phase 2 of the training (H with E and G frozen, the loss at
//! each of T refinement iterations, with the optional training aids of `refiner_aids`); see
//! `hyperstyle_refiner::train` and docs/ENCODER_REFINER.md ("Training").

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use e4e_encoder::PairDataset;
use hyperstyle_refiner::train::{StopReason, run_training};
use hyperstyle_refiner::{HyperConfig, RefinerTrainConfig};
use pharynx_phantom::layout::Split;
use refiner_aids::{AidsConfig, StructureNetConfig, StructureTrainConfig, StructureTrainer};

use crate::cli::encoder::{
    CommonTrainArgs, Preset, ScheduleArgs, budget, load_inputs, phantom_pairs, preset_or_json,
    report,
};

#[derive(Debug, Subcommand)]
pub enum RefinerCommand {
    /// Train the hypernetwork H with the encoder and the generator frozen; resumes from the
    /// latest checkpoint in --out and exports to <out>/export.
    Train(Box<RefinerTrainArgs>),
    /// Train the structure net of the optional structure loss (`refiner train --structure`):
    /// a small U-Net segmenting images into background + the four anatomical classes, on the
    /// phantom's training images and label maps; resumes from the latest checkpoint in --out
    /// and exports to <out>/export with its DICE on the seg_val split.
    StructureNet(StructureNetArgs),
}

#[derive(Debug, Args)]
pub struct StructureNetArgs {
    /// A phantom dataset folder (its train split, with masks/; seg_val for the held-out DICE).
    #[arg(long)]
    data: PathBuf,
    /// Image side the net is trained at (the generator's size; a multiple of 8).
    #[arg(long, default_value_t = 64, value_parser = crate::cli::args::count::<u32>, allow_hyphen_values = true)]
    size: u32,
    /// Run folder: checkpoints/, samples/, log.csv, loss.png, export/.
    #[arg(long)]
    out: PathBuf,
    /// Total steps (a resumed run continues up to this step).
    #[arg(long, default_value_t = 3000, value_parser = crate::cli::args::count::<u64>, allow_hyphen_values = true)]
    steps: u64,
    #[arg(long, default_value_t = 16, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, value_parser = crate::cli::args::positive, allow_hyphen_values = true)]
    lr: f64,
    /// Channels of the U-Net's first level.
    #[arg(long, default_value_t = 16, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    width: usize,
    /// Standard deviation of the Gaussian noise added to the training images ([-1, 1] units).
    #[arg(long, default_value_t = 0.05, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    noise: f64,
    #[command(flatten)]
    schedule: ScheduleArgs,
}

#[derive(Debug, Args)]
pub struct RefinerTrainArgs {
    #[command(flatten)]
    common: CommonTrainArgs,
    /// The encoder's export folder (from `sketch2medi encoder train`), trained with the same
    /// generator.
    #[arg(long)]
    encoder: PathBuf,
    /// H preset: narrow_cpu, hyperstyle; or a JSON HyperConfig file. The input size follows
    /// the generator.
    #[arg(long, default_value = "narrow_cpu")]
    preset: String,
    /// Refinement iterations T per sample (each with its loss).
    #[arg(long, default_value_t = hyperstyle_refiner::DEFAULT_STEPS, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    iterations: usize,
    /// Weight of the sketch-weighted MSE (the squared error on the pixels the sketch draws,
    /// dilated by one pixel) added to L_sim at every iteration. 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    sketch_l2: f64,
    /// Weight of the region loss added at every iteration: for each structure of the target's
    /// label map (the phantom's masks/), the squared error of the mean colour over that
    /// region, so that structures do not fade into their surroundings. 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    region: f64,
    /// Weight of a structure loss added at every iteration: cross-entropy + soft Dice of the
    /// frozen structure net (--structure-net) on the image against the target's label map, so
    /// that every structure stays visible where the target has it. 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    structure: f64,
    /// Weight of a feature distance added at every iteration: LPIPS-style (unit-normalised
    /// channels, squared difference) between the image and the target through the frozen
    /// structure net's feature maps, a domain-trained stand-in for the unavailable MoCo trunk.
    /// 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    structure_features: f64,
    /// The structure net for --structure / --structure-features: an export folder of
    /// `refiner structure-net`.
    #[arg(long)]
    structure_net: Option<PathBuf>,
    /// Weight of a realism term added at every iteration: the non-saturating GAN loss of the
    /// generator's discriminator (frozen, from --discriminator). 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cli::args::non_negative, allow_hyphen_values = true)]
    adv: f64,
    /// The discriminator for --adv: a `sketch2medi stylegan2 train` checkpoint (its `d.*`
    /// tensors, e.g. weights/stylegan2_phantom64/resume/ckpt-000005175.safetensors) or a
    /// safetensors file of the discriminator alone.
    #[arg(long)]
    discriminator: Option<PathBuf>,
    /// Fine-tune: initialise H from this refiner export folder (same preset and generator)
    /// when the run starts fresh; a checkpoint in --out takes precedence. Adam starts anew.
    #[arg(long)]
    init: Option<PathBuf>,
}

pub fn run(cmd: RefinerCommand) -> anyhow::Result<()> {
    match cmd {
        RefinerCommand::Train(args) => train(*args),
        RefinerCommand::StructureNet(args) => structure_net(args),
    }
}

fn train(args: RefinerTrainArgs) -> anyhow::Result<()> {
    let device = crate::cli::device()?;
    let budget = budget(args.common.schedule.max_minutes)?;
    let masks = args.region > 0.0 || args.structure > 0.0;
    let inputs = load_inputs(&args.common, masks, &device)?;
    let size = inputs.generator.config().size as usize;
    let c = &args.common;
    let presets: [Preset<HyperConfig>; 2] = [
        ("narrow_cpu", HyperConfig::narrow_cpu),
        ("hyperstyle", HyperConfig::hyperstyle),
    ];
    let cfg = RefinerTrainConfig {
        hyper: HyperConfig {
            input_size: size,
            ..preset_or_json(&args.preset, &presets, "HyperConfig")?
        },
        batch: c.batch,
        lr: c.lr,
        iterations: args.iterations,
        l2_lambda: c.l2,
        lpips_lambda: c.lpips,
        moco_lambda: c.moco,
        init_from: args.init.clone(),
        schedule: s2m_train::Schedule {
            log_every: c.log_every,
            ..c.schedule.to_schedule()
        },
        ..RefinerTrainConfig::default()
    };
    let aids = AidsConfig {
        sketch_l2_lambda: args.sketch_l2,
        adv_lambda: args.adv,
        region_lambda: args.region,
        structure_lambda: args.structure,
        structure_features_lambda: args.structure_features,
        structure_net: args.structure_net.clone(),
        discriminator: args.discriminator.clone(),
    };
    let mut trainer = refiner_aids::open_trainer(
        cfg,
        &aids,
        inputs.generator,
        &args.encoder,
        inputs.loss,
        &c.out,
        &device,
    )
    .with_context(|| format!("opening the run in {}", c.out.display()))?;
    super::progress::print_resume_notes(trainer.resume_report());
    if let Some(val) = &inputs.val {
        trainer.set_validation(val)?;
    }
    if let (Some(init), 0) = (trainer.init(), trainer.step()) {
        eprintln!(
            "initialised H from {} (sha256 {}, {} steps)",
            init.dir, init.sha256, init.steps
        );
    }
    let start = trainer.step();
    let bar = crate::cli::progress::progress_bar(c.steps, start);
    let reason = run_training(&mut trainer, &inputs.train, c.steps, budget, |s| {
        bar.set_position(s.step);
        let steps: Vec<String> = s.sim_t.iter().map(|v| format!("{v:.3}")).collect();
        let extras: String = [
            ("sketch-MSE", "sketch_l2"),
            ("adv", "adv"),
            ("region", "region"),
            ("structure", "structure"),
            ("structure-features", "structure_features"),
        ]
        .iter()
        .filter_map(|(label, name)| s.extra(name).map(|v| format!(" {label} {v:.4}")))
        .collect();
        bar.set_message(format!(
            "sum {:.3} E {:.3} t=1..{} {}{extras} {:.2}s/step",
            s.total,
            s.sim_e,
            s.sim_t.len(),
            steps.join("/"),
            s.seconds
        ));
    })?;
    bar.finish();
    let export = c.out.join("export");
    trainer.export(&export)?;
    report(
        "refiner H",
        reason,
        trainer.step(),
        start,
        &export,
        trainer.similarity().notes(),
    );
    Ok(())
}

fn structure_net(args: StructureNetArgs) -> anyhow::Result<()> {
    let device = crate::cli::device()?;
    let budget = budget(args.schedule.max_minutes)?;
    let train = phantom_pairs(&args.data, Split::Train, args.size, None, true)?;
    let held_out = phantom_pairs(&args.data, Split::SegVal, args.size, None, true)
        .ok()
        .filter(|p| !p.is_empty());
    let cfg = StructureTrainConfig {
        net: StructureNetConfig {
            width: args.width,
            ..StructureNetConfig::default()
        },
        batch: args.batch,
        lr: args.lr,
        noise_std: args.noise,
        schedule: args.schedule.to_schedule(),
        ..StructureTrainConfig::default()
    };
    let mut trainer = StructureTrainer::open(cfg, &args.out, &device)
        .with_context(|| format!("opening the run in {}", args.out.display()))?;
    super::progress::print_resume_notes(trainer.resume_report());
    if let Some(val) = &held_out {
        trainer.set_validation(val)?;
    }
    let start = trainer.step();
    let bar = crate::cli::progress::progress_bar(args.steps, start);
    let reason = run_training(&mut trainer, &train, args.steps, budget, |s| {
        bar.set_position(s.step);
        bar.set_message(format!(
            "loss {:.4} (CE {:.4} Dice {:.4}) {:.2}s/step",
            s.total, s.cross_entropy, s.dice, s.seconds
        ));
    })?;
    bar.finish();
    let dice = held_out
        .as_ref()
        .map(|val| trainer.held_out_dice(val, 32))
        .transpose()?;
    let export = args.out.join("export");
    trainer.export(&export, dice.clone())?;
    println!(
        "structure net: {} after {} steps ({} this run); export in {}",
        match reason {
            StopReason::Finished => "finished",
            StopReason::Budget => "stopped at the time budget",
        },
        trainer.step(),
        trainer.step() - start,
        export.display()
    );
    match dice {
        Some(d) => println!(
            "held-out DICE (uvula, wall, tonsil, tongue): {:.4} {:.4} {:.4} {:.4}, mean {:.4}",
            d.per_class[0], d.per_class[1], d.per_class[2], d.per_class[3], d.mean
        ),
        None => println!("no seg_val split: no held-out DICE"),
    }
    Ok(())
}
