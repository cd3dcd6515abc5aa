"""
The estimator in a grid search
==============================

:class:`xpnet.sklearn.CNNClassifier` is a scikit-learn classifier (it passes scikit-learn's
own estimator checks), so it goes into a ``Pipeline`` and a ``GridSearchCV`` like any other.
Here it learns scikit-learn's 8x8 digits, flat rows of 64 pixels that it takes as square
one-channel images, and the search picks the peak learning rate by 3-fold
cross-validation.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from xpnet.sklearn import CNNClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
pipe = make_pipeline(MinMaxScaler(), CNNClassifier(random_state=0))
search = GridSearchCV(pipe, {"cnnclassifier__lr": [2e-3, 5e-3]}, cv=3).fit(X_train, y_train)
for lr, score in zip(
    search.cv_results_["param_cnnclassifier__lr"], search.cv_results_["mean_test_score"]
):
    print(f"lr {lr:g}: mean cross-validated accuracy {score:.3f}")
print("chosen:", search.best_params_, "net:", search.best_estimator_[-1].model_name_)
print(f"held-out accuracy: {search.score(X_test, y_test):.3f}")

# %%
ConfusionMatrixDisplay.from_estimator(search, X_test, y_test, cmap="Blues", colorbar=False)
plt.title("held-out digits")
plt.show()
