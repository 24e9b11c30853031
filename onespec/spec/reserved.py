"""Node names a spec may not use: attributes of ``torch.nn.Module``, ``paddle.nn.Layer`` and
``mindspore.nn.Cell`` (class and instance attributes of torch 2.14, paddle 3.3 and MindSpore 2.10).
A child registered under one of these names shadows the attribute (``forward``, ``training``) or
is silently not registered (MindSpore ``cells``), so the spec rejects them (rule ``reserved``).
onespec's own emitted modules keep their attributes private (``_merge``), and node names start
with a letter, so they cannot collide. ``tests/spec/test_reserved.py`` checks this list against
the installed frameworks."""

RESERVED_NAMES = frozenset({
    "IGNORE_LIST", "T_destination", "add_flags", "add_flags_recursive", "add_module", "add_parameter",
    "add_sublayer", "apply", "arguments_key", "astype", "backward", "bfloat16", "bprop_debug", "buffers",
    "call_super_init", "cast_inputs", "cell_init_args", "cell_type", "cells", "cells_and_names",
    "check_names", "check_names_and_refresh_name", "children", "clear_gradients", "cls_name", "compile",
    "compile_and_run", "compile_cache", "compile_phase", "compiled", "construct", "cpu", "create_parameter",
    "create_tensor", "create_time", "create_variable", "cuda", "double", "dump_patches",
    "enable_backward_hook", "eval", "exist_names", "exist_objs", "extend_repr", "extra_repr", "float",
    "float16", "forward", "full", "full_name", "generate_scope", "get_buffer", "get_extra_state", "get_flags",
    "get_func_graph_proto", "get_inputs", "get_mixed_precision_type", "get_parameter", "get_parameters",
    "get_scope", "get_sub_cell", "get_sublayer", "get_submodule", "global_cells", "grad_ops_label", "half",
    "has_bprop", "init_parameters_data", "insert_child_to_cell", "insert_param_to_cell", "ipu", "is_top_cell",
    "jit_config_dict", "load_dict", "load_state_dict", "mixed_precision_type", "modules", "mtia",
    "name_cells", "named_buffers", "named_children", "named_modules", "named_parameters", "named_sublayers",
    "offload", "parallel_parameter_merge_net_dict", "parallel_parameter_name_list", "param_prefix",
    "parameter_layout_dict", "parameters", "parameters_and_names", "parameters_broadcast_dict",
    "parameters_dict", "phase", "phase_cache", "pipeline_segment", "pipeline_stage", "recompute",
    "register_backward_hook", "register_backward_pre_hook", "register_buffer", "register_forward_hook",
    "register_forward_post_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_parameter_forward_hook", "register_saved_tensors_hooks", "register_state_dict_hook",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "remove_redundant_parameters",
    "requires_grad", "requires_grad_", "run_construct", "set_boost", "set_broadcast_flag", "set_comm_fusion",
    "set_data_parallel", "set_dict", "set_extra_state", "set_grad", "set_inputs", "set_jit_config",
    "set_mixed_precision_type", "set_state_dict", "set_sublayer", "set_submodule", "set_train", "shard",
    "sharded_state_dict", "share_memory", "state_dict", "sublayers", "to", "to_empty", "to_float",
    "to_static_state_dict", "total_instance_count", "train", "trainable_params", "training", "type",
    "untrainable_params", "update_cell_prefix", "update_cell_type", "update_parameters_name", "xpu",
    "zero_grad",
})
