"""Recipes that train the example models and convert them into the model repository ``models/``.

Each recipe trains a small real model in seconds on the CPU, with data generated here or shipped inside a
package (scikit-learn's 8x8 digits), saves the framework's own artefact and converts it with
``modelport.converters.convert``. ``python examples/build_models.py`` (``make models``) runs them all.

The data modules (``sentences``, ``vocabulary``, ``datasets``) need only numpy and scikit-learn, so the tests
and the client scripts can use them without torch or TensorFlow.
"""

__all__: list[str] = []
