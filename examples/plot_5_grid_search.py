"""
The estimator in a grid search
==============================

:class:`xpnet.sklearn.CNNClassifier` is a scikit-learn classifier (it passes scikit-learn's
own estimator checks), so it goes into a ``Pipeline`` and a ``GridSearchCV`` like any other.
Here it learns scikit-learn's 8x8 digits, flat rows of 64 pixels that it takes as square
one-channel images, and the search picks the peak learning rate by 3-fold
cross-validation. The first cell is the README's example, as it is written there (the
test suite checks that the two stay the same, and this build runs it).
"""

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from xpnet.sklearn import CNNClassifier

X, y = load_digits(return_X_y=True)  # 8x8 images, flat: taken as square one-channel images
pipe = make_pipeline(MinMaxScaler(), CNNClassifier(random_state=0))
search = GridSearchCV(pipe, {"cnnclassifier__lr": [2e-3, 5e-3]}, cv=3).fit(X, y)
print(search.best_params_, f"{search.best_score_:.3f}")

# %%
# Each fold's score
# -----------------
# ``epochs="auto"`` trained each fold's net for 80 epochs (at least 800 optimizer steps of
# 128 images); the search refitted the best pipeline on all 1,797 digits. For
# ``small_cnn``, the net the estimator picks for images this small, see ``model_name_``.
import matplotlib.pyplot as plt
import numpy as np

results = search.cv_results_
folds = np.array([results[f"split{i}_test_score"] for i in range(3)])
print("net:", search.best_estimator_[-1].model_name_)
for lr, mean, std in zip(
    results["param_cnnclassifier__lr"], results["mean_test_score"], results["std_test_score"]
):
    print(f"lr {lr:g}: accuracy {mean:.3f} +- {std:.3f} over 3 folds")
assert search.best_score_ > 0.95  # the figure the README's example prints: 0.98 here

fig, ax = plt.subplots(figsize=(5, 3.5))
for i in range(2):
    ax.plot([i] * 3, folds[:, i], "o", color="tab:blue")
ax.bar(range(2), results["mean_test_score"], color="tab:blue", alpha=0.3)
ax.set(
    xticks=range(2),
    xticklabels=[f"lr {lr:g}" for lr in results["param_cnnclassifier__lr"]],
    ylim=(0.9, 1.0),
    ylabel="accuracy on the held-out fold",
    title="3-fold cross-validation",
)
plt.show()
