"""`kfashion`: the one command line for every job of the project. The commands live by topic in
kfashion/commands/; this file only assembles them."""

from __future__ import annotations

import typer

from kfashion.commands import catalog, labels, models, serving, stack, training

app = typer.Typer(
    help="K-Fashion Serve: tagging, search and outfit matching for the K-Fashion taxonomy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Serving and tagging files
app.command()(serving.serve)
app.command()(serving.predict)
# Data, training and evaluation
app.command()(training.synth)
app.command()(training.train)
app.command("train-real")(training.train_real)
app.command("import")(training.import_real)
app.command("eval")(training.evaluate)
app.command()(training.export)
# The taxonomy and label files
app.command()(labels.taxonomy)
app.add_typer(labels.labels_app, name="labels")
# Installed models, the catalog, the microservice stack on one machine
app.add_typer(models.models_app, name="models")
app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(stack.stack_app, name="stack")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
