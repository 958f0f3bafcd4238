//! The L2 term of L_sim: `torch.nn.MSELoss()` (mean over all elements), as in e4e/pSp/HyperStyle
//! (`F.mse_loss(y_hat, y)`).

use candle_core::Tensor;

use crate::error::{LossError, Result};

/// Mean squared error over all elements; the two tensors must have the same shape.
pub fn l2_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.dims() != target.dims() {
        return Err(LossError::Shape {
            what: "L2 loss: prediction and target differ in shape".into(),
            expected: format!("the prediction's shape {:?}", pred.dims()),
            got: target.dims().to_vec(),
        });
    }
    if pred.elem_count() == 0 {
        return Err(LossError::Shape {
            what: "L2 loss: empty tensors".into(),
            expected: "at least one element".into(),
            got: pred.dims().to_vec(),
        });
    }
    Ok((pred - target)?.sqr()?.mean_all()?)
}
