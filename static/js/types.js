/**
 * JSDoc typedefs for the wire types (docs/protocol.md) and the page state, in one place.
 * This module exports nothing at run time; other modules import its types in JSDoc only.
 */

/**
 * @typedef {object} LayerSpec  one hidden layer of SessionConfig.layers
 * @property {number} units
 * @property {string} activation
 * @property {number} dropout
 * @property {boolean} batch_norm
 */

/**
 * @typedef {object} SessionConfig  the server's config (every field, as SessionPublic returns it)
 * @property {string} dataset
 * @property {number[][] | null} points
 * @property {number | null} n_samples
 * @property {number} noise
 * @property {number} train_ratio
 * @property {number} seed
 * @property {string[]} features
 * @property {LayerSpec[]} layers
 * @property {string | null} problem
 * @property {string | null} loss
 * @property {string} initializer
 * @property {string} optimizer
 * @property {number} learning_rate
 * @property {number | null} momentum
 * @property {boolean} nesterov
 * @property {number} rho
 * @property {number} beta_1
 * @property {number} beta_2
 * @property {number} epsilon
 * @property {number} initial_accumulator_value
 * @property {number} batch_size
 * @property {string} regularization
 * @property {number} regularization_rate
 * @property {number | null} max_norm
 * @property {number | null} early_stopping_patience
 * @property {boolean} augmentation
 * @property {number | null} epoch_budget
 * @property {number} frame_rate
 * @property {number | null} speed        epochs per second (null: as fast as the machine goes)
 * @property {number} init_draw           which draw of the seed's initial weights
 * @property {number[][] | null} test_points  an explicit test set (with `points`)
 */

/**
 * @typedef {object} TrainingWarning  the loss says the run is unstable, while it goes on
 * @property {'unstable' | 'rising'} kind
 * @property {string} message
 * @property {number} since_epoch
 * @property {number} suggested_learning_rate
 */

/**
 * @typedef {SessionConfig & {show_test: boolean, discretize: boolean, log_scale: boolean}} PageState
 */

/**
 * @typedef {object} ParamSpec
 * @property {string} name
 * @property {number | boolean | string | null} default
 * @property {number | null} [min]
 * @property {number | null} [max]
 */

/**
 * @typedef {object} RegistryEntry
 * @property {string} [description]
 * @property {ParamSpec[]} [params]
 * @property {string[]} [problems]  losses: the problems they fit
 */

/**
 * @typedef {object} DatasetEntry
 * @property {'binary' | 'multiclass' | 'regression'} kind
 * @property {number} n_classes
 * @property {number} default_samples
 * @property {string} description
 */

/**
 * @typedef {object} Registry  GET /api/registry
 * @property {Record<string, DatasetEntry>} datasets
 * @property {Record<string, RegistryEntry>} activations
 * @property {Record<string, RegistryEntry>} losses
 * @property {Record<string, RegistryEntry>} optimizers
 * @property {Record<string, RegistryEntry>} initializers
 * @property {Record<string, RegistryEntry>} regularizers
 * @property {Record<string, {name: string, label: string}> | string[]} features
 * @property {string[]} problems
 * @property {Record<string, number>} limits
 * @property {Record<string, unknown>} defaults
 */

/**
 * @typedef {object} Metrics
 * @property {number | null} train_loss
 * @property {number | null} test_loss
 * @property {number | null} [train_accuracy]
 * @property {number | null} [test_accuracy]
 * @property {number | null} [train_metric]
 * @property {number | null} [test_metric]
 */

/**
 * @typedef {object} SessionPublic
 * @property {string} id
 * @property {'paused' | 'running' | 'finished' | 'diverged'} status
 * @property {string | null} status_reason
 * @property {number} epoch
 * @property {SessionConfig} config
 * @property {string} weights_hash
 * @property {Metrics} metrics
 * @property {number} n_train
 * @property {number} n_test
 * @property {string} ws_url
 * @property {TrainingWarning | null} [warning]
 */

/**
 * @typedef {object} SectionEntry
 * @property {number} offset   bytes from the payload start
 * @property {number} length   elements
 * @property {'uint8' | 'float32' | 'float64'} dtype
 * @property {number[]} shape
 * @property {number} [min]
 * @property {number} [max]
 * @property {number[][]} [ranges]
 * @property {string[]} [columns]  epochs: the name of each column of a row
 */

/**
 * @typedef {object} FrameLayer  one Dense layer in a frame (hidden then output)
 * @property {number} index
 * @property {number} units
 * @property {string} activation
 * @property {number[][]} kernel  n_in × units
 * @property {number[]} bias
 * @property {number | null} grad_norm
 * @property {number} dropout
 * @property {object | null} batch_norm
 */

/**
 * @typedef {object} FrameHeader  the JSON header of a binary frame
 * @property {'frame'} type
 * @property {number} protocol
 * @property {string} session_id
 * @property {number} seq
 * @property {number} history_id  changes when the history restarts (reset, regenerate, rebuild)
 * @property {number} epoch
 * @property {'paused' | 'running' | 'finished' | 'diverged'} status
 * @property {string | null} status_reason
 * @property {string} weights_hash
 * @property {'binary' | 'multiclass' | 'regression'} problem
 * @property {number} n_classes
 * @property {string} metric
 * @property {Metrics} metrics
 * @property {{train: number[][], test: number[][]} | null} confusion
 * @property {FrameLayer[]} layers
 * @property {string[]} inputs
 * @property {{extent: number[], resolution: number}} grid
 * @property {Record<string, SectionEntry>} sections
 * @property {number} epochs_first
 * @property {boolean} lockstep
 * @property {boolean} [rows_only]  only older epoch rows (no grids): record, never draw
 * @property {TrainingWarning | null} [warning]
 */

/**
 * @typedef {object} Frame  a decoded frame: the header and typed views on its sections
 * @property {FrameHeader} header
 * @property {Float32Array | null} epochs      k × epochColumns.length, row-major
 * @property {string[]} epochColumns           names of a row's columns (train_loss, test_loss, ...)
 * @property {Float32Array | null} output      r × r, dequantized
 * @property {Uint8Array | null} outputClass   r × r class index (multiclass)
 * @property {Float32Array | null} neurons     m × g × g, dequantized
 * @property {number} neuronResolution         g
 */

/**
 * @typedef {object} DataPoints  the session's points, split as the server split them
 * @property {number[][]} train  [x1, x2, label]
 * @property {number[][]} test
 */

export {};
