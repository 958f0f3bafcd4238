//! `sketch2medi refiner train`: phase 2 of the training (H with E and G frozen, the loss at
//! each of T refinement iterations); see `hyperstyle_refiner::train` and
//! docs/ENCODER_REFINER.md ("Training").

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyperstyle_refiner::train::run_training;
use hyperstyle_refiner::{HyperConfig, RefinerTrainConfig, RefinerTrainer};

use crate::cli::encoder::{
    CommonTrainArgs, Preset, budget, load_inputs, preset_or_json, progress_bar, report,
};

#[derive(Debug, Subcommand)]
pub enum RefinerCommand {
    /// Train the hypernetwork H with the encoder and the generator frozen; resumes from the
    /// latest checkpoint in --out and exports to <out>/export.
    Train(RefinerTrainArgs),
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
    #[arg(long, default_value_t = hyperstyle_refiner::DEFAULT_STEPS)]
    iterations: usize,
    /// Weight of the sketch-weighted MSE (the squared error on the pixels the sketch draws,
    /// dilated by one pixel) added to L_sim at every iteration. 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0)]
    sketch_l2: f64,
    /// Weight of the region loss added at every iteration: for each structure of the target's
    /// label map (the phantom's masks/), the squared error of the mean colour over that
    /// region, so that structures do not fade into their surroundings. 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0)]
    region: f64,
    /// Weight of a realism term added at every iteration: the non-saturating GAN loss of the
    /// generator's discriminator (frozen, from --discriminator). 0 = the paper's loss.
    #[arg(long, default_value_t = 0.0)]
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
        RefinerCommand::Train(args) => train(args),
    }
}

fn train(args: RefinerTrainArgs) -> anyhow::Result<()> {
    let device = crate::cli::device()?;
    let budget = budget(args.common.max_minutes)?;
    let inputs = load_inputs(&args.common, args.region > 0.0, &device)?;
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
        sketch_l2_lambda: args.sketch_l2,
        adv_lambda: args.adv,
        region_lambda: args.region,
        discriminator: args.discriminator.clone(),
        init_from: args.init.clone(),
        seed: c.seed,
        sample_every: c.sample_every,
        checkpoint_every: c.checkpoint_every,
        log_every: c.log_every,
        ..RefinerTrainConfig::default()
    };
    let mut trainer = RefinerTrainer::open(
        cfg,
        inputs.generator,
        &args.encoder,
        inputs.loss,
        &c.out,
        &device,
    )
    .with_context(|| format!("opening the run in {}", c.out.display()))?;
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
    let bar = progress_bar(c.steps, start);
    let reason = run_training(&mut trainer, &inputs.train, c.steps, budget, |s| {
        bar.set_position(s.step);
        let steps: Vec<String> = s.sim_t.iter().map(|v| format!("{v:.3}")).collect();
        let extras: String = [
            ("sketch-MSE", s.sketch_l2_last),
            ("adv", s.adv_last),
            ("region", s.region_last),
        ]
        .iter()
        .filter_map(|(name, v)| v.map(|v| format!(" {name} {v:.4}")))
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
