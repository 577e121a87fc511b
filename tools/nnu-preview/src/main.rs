//! `nnu-preview`: a PNG preview of an image with its segmentation, or a difference view against a reference.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use nnu_render::{difference_labels, render_preview, PreviewOptions, Window};
use nnu_volume::{read_labels, read_volume, Volume};

/// Draw a PNG preview of a 3-D image (NIfTI, or a folder holding a DICOM series) with a segmentation: axial, coronal and sagittal views through
/// the segmented region (patient's right on the image's left), the intensity window, one colour per label
/// with a legend (names and volumes in mL), slice positions in mm. With --reference, colour the difference
/// instead: agree (green), false positive (red), false negative (blue), other class (magenta).
#[derive(Parser, Debug)]
#[command(
    name = "nnu-preview",
    version,
    about,
    override_usage = "nnu-preview IMAGE SEG -o PNG [OPTIONS]\n       nnu-preview -i IMAGE --seg SEG -o PNG [OPTIONS]",
    after_help = "Examples:\n  nnu-preview CASE_0000.nii.gz CASE.nii.gz -o CASE.png --labels liver,tumour\n  \
                  nnu-preview CASE_0000.nii.gz pred/CASE.nii.gz --reference labelsTr/CASE.nii.gz -o diff.png\n  \
                  nnu-preview dicom/series_3/ pred/PATIENT_s3_UID.nii.gz -o CASE.png\n\n\
                  Exit status: 0 written, 2 bad arguments, bad input or failure to write (nothing written)."
)]
struct Args {
    /// IMAGE then SEG: the image (.nii or .nii.gz; for a multi-modality case, its first file
    /// CASE_0000.nii.gz; or a folder holding a DICOM series, read as nnu-predict reads it; a folder of
    /// several series takes the one SEG is named after, PATIENT_sN_UID.nii.gz) and the segmentation
    /// (integer labels 0..255, same grid as IMAGE). Either may be given with -i / --seg instead.
    #[arg(value_name = "IMAGE SEG", num_args = 0..=2)]
    paths: Vec<PathBuf>,
    /// The image, as the flag the other tools use for their input (instead of the first positional).
    #[arg(short = 'i', long = "input", value_name = "IMAGE")]
    input: Option<PathBuf>,
    /// The segmentation (instead of the second positional).
    #[arg(short = 's', long = "seg", value_name = "SEG")]
    seg: Option<PathBuf>,
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
    let mut args = Args::parse();
    let (image, seg) = match image_and_seg(&mut args) {
        Ok(pair) => pair,
        Err(msg) => Args::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, msg)
            .exit(),
    };
    nnu_cli::exit_status(run(args, image, seg).map(|()| true))
}

/// IMAGE and SEG from the positionals and the flags: `-i` and `--seg` take the place of the first and
/// second positional, so `nnu-preview -i IMAGE SEG` works too; each must be given exactly once.
fn image_and_seg(args: &mut Args) -> Result<(PathBuf, PathBuf), String> {
    let mut positional = std::mem::take(&mut args.paths).into_iter();
    let image = match args.input.take() {
        Some(p) => p,
        None => positional
            .next()
            .ok_or("the image is missing: give IMAGE SEG (or -i IMAGE --seg SEG)")?,
    };
    let seg = match args.seg.take() {
        Some(p) => p,
        None => positional
            .next()
            .ok_or("the segmentation is missing: give IMAGE SEG (or -i IMAGE --seg SEG)")?,
    };
    match positional.next() {
        Some(extra) => Err(format!(
            "unexpected argument `{}`: IMAGE and SEG are already given",
            extra.display()
        )),
        None => Ok((image, seg)),
    }
}

fn run(
    args: Args,
    image_path: PathBuf,
    seg_path: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let window = Window::parse(&args.window)?;
    let image = read_image(&image_path, &seg_path)?;
    let seg = read_labels(&seg_path)?;
    if seg.data.shape() != image.data.shape() {
        return Err(format!(
            "{}: shape {:?} differs from the image's {:?} ({})",
            seg_path.display(),
            seg.data.shape(),
            image.data.shape(),
            image_path.display()
        )
        .into());
    }
    let title = args.title.clone().unwrap_or_else(|| stem(&seg_path));
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
                .map_err(|e| format!("{} against {}: {e}", seg_path.display(), r.display()))?;
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

/// The image to draw: a NIfTI file, or the DICOM series a folder holds (the one `seg` is named after when
/// it holds several, as `nnu-predict` names a series' segmentation).
fn read_image(image: &Path, seg: &Path) -> Result<Volume<f32>, Box<dyn std::error::Error>> {
    if image.is_dir() {
        let series = nnu_dicom::find_one_series(image, Some(&stem(seg)))?;
        return Ok(nnu_dicom::read_series(&series)?);
    }
    Ok(read_volume(image)?)
}

/// The file name without `.nii` / `.nii.gz`.
fn stem(p: &Path) -> String {
    p.file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".gz")
                .trim_end_matches(".nii")
                .to_string()
        })
        .unwrap_or_default()
}
