//! `nnu-preview`: a PNG preview of an image with its segmentation, or a difference view against a reference.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nnu_render::{difference_labels, render_preview, PreviewOptions, Window};
use nnu_volume::{read_labels, read_volume};

/// Draw a PNG preview of a 3-D image (NIfTI) with a segmentation: axial, coronal and sagittal views through
/// the segmented region (patient's right on the image's left), the intensity window, one colour per label
/// with a legend (names and volumes in mL), slice positions in mm. With --reference, colour the difference
/// instead: agree (green), false positive (red), false negative (blue), other class (magenta).
#[derive(Parser, Debug)]
#[command(
    name = "nnu-preview",
    version,
    about,
    after_help = "Examples:\n  nnu-preview CASE_0000.nii.gz CASE.nii.gz -o CASE.png --labels liver,tumour\n  \
                  nnu-preview CASE_0000.nii.gz pred/CASE.nii.gz --reference labelsTr/CASE.nii.gz -o diff.png\n\n\
                  Exit status: 0 written, 2 bad input or failure to write."
)]
struct Args {
    /// The image (.nii or .nii.gz; for a multi-modality case, its first file CASE_0000.nii.gz).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// The segmentation (integer labels 0..255, same grid as IMAGE).
    #[arg(value_name = "SEG")]
    seg: PathBuf,
    /// Output PNG (written atomically).
    #[arg(short = 'o', long, value_name = "PNG")]
    output: PathBuf,
    /// Reference segmentation: draw where SEG and REF agree and differ instead of SEG's labels.
    #[arg(long, value_name = "REF")]
    reference: Option<PathBuf>,
    /// Intensity window LEVEL,WIDTH (e.g. 40,400 for abdominal soft tissue in HU, 400,1800 for bone,
    /// -600,1500 for lung) or `auto`: the abdominal window for CT, the 0.5-99.5 percentiles otherwise.
    #[arg(
        long,
        value_name = "L,W",
        default_value = "auto",
        allow_hyphen_values = true
    )]
    window: String,
    /// Names of labels 1, 2, ... for the legend, comma-separated (default "label 1", "label 2", ...).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    labels: Vec<String>,
    /// Title at the top (default: the segmentation's file name).
    #[arg(long)]
    title: Option<String>,
    /// Longest edge of each view in pixels.
    #[arg(long, default_value_t = 320)]
    size: usize,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let window = Window::parse(&args.window)?;
    let image = read_volume(&args.image)?;
    let seg = read_labels(&args.seg)?;
    if seg.data.shape() != image.data.shape() {
        return Err(format!(
            "{}: shape {:?} differs from the image's {:?} ({})",
            args.seg.display(),
            seg.data.shape(),
            image.data.shape(),
            args.image.display()
        )
        .into());
    }
    let title = args.title.clone().unwrap_or_else(|| stem(&args.seg));
    let mut opts = PreviewOptions {
        window,
        label_names: args.labels.clone(),
        panel_size: args.size.clamp(32, 4096),
        title,
        ..PreviewOptions::default()
    };
    let labels = match &args.reference {
        Some(r) => {
            let reference = read_labels(r)?;
            let diff = difference_labels(seg.data.view(), reference.data.view())
                .map_err(|e| format!("{} against {}: {e}", args.seg.display(), r.display()))?;
            opts.title = format!("{} vs {}", opts.title, stem(r));
            opts = opts.for_difference();
            diff
        }
        None => seg.data,
    };
    let png = render_preview(image.data.view(), labels.view(), &image.geometry, &opts)?;
    png.save_png(&args.output)?;
    eprintln!("{} ({} x {})", args.output.display(), png.width, png.height);
    Ok(())
}

/// The file name without `.nii` / `.nii.gz`.
fn stem(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".gz")
                .trim_end_matches(".nii")
                .to_string()
        })
        .unwrap_or_default()
}
