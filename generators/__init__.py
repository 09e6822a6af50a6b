"""Task generators: the story world, RULER-style tasks and QA tasks. Importing a subpackage registers its tasks."""
